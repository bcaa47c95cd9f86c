"""End to end: `run_episode` and `video-eval task=episode` against a real sqlite MLflow store."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from sklearn.metrics import confusion_matrix

from evaluator.demo.episode_data import make_episode_demo
from evaluator.errors import InputError, TrackingError
from evaluator.tasks.episode import EpisodeOutcome, run_episode
from tests.conftest import artifact_paths, compose_config, run_cli, sqlite_run

# Hand-computed case, threshold 0.9. v2 and v3 sit exactly on the threshold and are decided
# alone (>=). v3 has predicted == metadata != true: auto-accepted, a missed mismatch. v4 is a
# confident false flag. v5 and v6 go to human review.
HAND_CSV = """video_id,series_id,season,metadata_episode,predicted_episode,confidence,true_episode
v1,A,1,1,1,0.95,1
v2,A,1,2,3,0.9,3
v3,A,2,4,4,0.9,5
v4,B,1,6,7,0.99,6
v5,B,1,8,9,0.5,8
v6,B,1,10,10,0.3,11
"""


@pytest.fixture(scope="module")
def episode_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The hand case as CSV and the two demo models (300 videos) as parquet / jsonl."""
    out = tmp_path_factory.mktemp("episodes")
    paths = {"hand": out / "hand.csv"}
    paths["hand"].write_text(HAND_CSV)
    demo = make_episode_demo(300, seed=5)
    paths["baseline"] = out / "episodes_baseline.parquet"
    demo.models["episode_baseline"].to_parquet(paths["baseline"], index=False)
    paths["candidate"] = out / "episodes_candidate.jsonl"
    demo.models["episode_candidate"].to_json(paths["candidate"], orient="records", lines=True)
    return paths


def _overrides(path: Path, db: Path, *extra: str) -> list[str]:
    return [
        "task=episode",
        f"data.episodes={path}",
        f"mlflow.tracking_uri=sqlite:///{db}",
        "episode.bootstrap.n_resamples=200",
        *extra,
    ]


def _recorded(path: Path, tmp_path: Path, *extra: str) -> tuple[EpisodeOutcome, MlflowClient, Run]:
    """`run_episode` on ``path`` into tmp_path/out, recorded in tmp_path/mlflow.db; the outcome,
    a client of that store and the run read back."""
    db = tmp_path / "mlflow.db"
    outcome = run_episode(compose_config(_overrides(path, db, *extra)), tmp_path / "out")
    return (outcome, *sqlite_run(db, outcome.run.run_id))


def test_task_episode_selects_its_experiment_and_needs_no_poster_files() -> None:
    cfg = compose_config(["task=episode"])
    assert cfg.task.name == "episode"
    assert cfg.mlflow.experiment == "episode-verification"
    assert cfg.episode.confidence_threshold == 0.9 and cfg.episode.target_accuracy == 0.99
    assert cfg.data.experts is None and cfg.data.predictions is None
    assert compose_config(["task=episode", "mlflow.experiment=x"]).mlflow.experiment == "x"
    assert compose_config([]).mlflow.experiment == "poster-frames"


def test_hand_case_end_to_end(episode_files, tmp_path: Path) -> None:
    outcome, client, run = _recorded(
        episode_files["hand"], tmp_path, "episode.target_accuracy=0.5", "run_name=hand"
    )
    m = run.data.metrics
    expected = {
        "episode_accuracy": 2 / 6,
        "mismatch_precision": 1 / 3,  # flags v2 v4 v5, true mismatches v2 v3 v6
        "mismatch_recall": 1 / 3,
        "mismatch_f1": 1 / 3,
        "coverage": 4 / 6,  # v1, v4 and the two ties v2, v3
        "auto_accuracy": 0.5,  # v1 and v2 right
        "n_missed_mismatches_auto_accepted": 1,  # v3
        "n_false_flags_auto": 1,  # v4
        "n_auto_accept": 2,
        "n_auto_flag": 2,
        "n_human_review": 2,
        "n_flagged": 3,
        "n_true_mismatches": 3,
        "n_videos": 6,
        "coverage_at_accuracy_0.5": 4 / 6,
        "coverage_at_accuracy_0.5_threshold": 0.9,
    }
    for name, value in expected.items():
        assert m[name] == pytest.approx(value, abs=1e-12), name
    assert m["coverage_at_accuracy_0.5_ci_low"] <= m["coverage_at_accuracy_0.5_ci_high"]

    videos = outcome.video_table
    assert videos["video_id"].tolist() == ["v1", "v2", "v3", "v4", "v5", "v6"]
    assert videos["decision"].tolist() == [
        "auto_accept", "auto_flag", "auto_accept", "auto_flag", "human_review", "human_review",
    ]  # fmt: skip
    assert videos["decision_correct"].tolist() == [True, True, False, False, False, False]
    assert videos["episode_correct"].tolist() == [True, True, False, False, False, False]
    assert videos["flagged"].tolist() == [False, True, False, True, True, False]
    assert videos["true_mismatch"].tolist() == [False, True, True, False, False, True]
    assert videos["series_id"].tolist() == ["A", "A", "A", "B", "B", "B"]
    assert videos["season"].tolist() == [1, 1, 2, 1, 1, 1]

    confusion = json.loads((tmp_path / "out" / "confusion_matrix.json").read_text())
    truth, flag = videos["true_mismatch"], videos["flagged"]
    assert confusion["matrix"] == confusion_matrix(truth, flag, labels=[False, True]).tolist()
    assert confusion["matrix"] == [[1, 2], [2, 1]]

    sweep = pd.read_parquet(tmp_path / "out" / "episode_sweep.parquet")
    assert sweep["threshold"].tolist() == [0.99, 0.95, 0.9, 0.5, 0.3]
    assert sweep["n_auto"].tolist() == [1, 2, 4, 5, 6]
    assert sweep["n_errors"].tolist() == [1, 1, 2, 3, 4]
    assert sweep["n_missed_mismatches_auto_accepted"].tolist() == [0, 0, 1, 1, 2]
    assert sweep["n_false_flags_auto"].tolist() == [1, 1, 1, 2, 2]

    groups = pd.read_parquet(tmp_path / "out" / "episode_groups.parquet")
    assert groups["series_id"].tolist() == ["A", "B"]
    assert groups["n_videos"].tolist() == [3, 3]
    assert groups["episode_accuracy"].tolist() == pytest.approx([2 / 3, 0.0])
    assert groups["mismatch_precision"].tolist() == pytest.approx([1.0, 0.0])
    assert groups["mismatch_recall"].tolist() == pytest.approx([0.5, 0.0])
    assert groups["coverage"].tolist() == pytest.approx([1.0, 1 / 3])
    assert groups["auto_accuracy"].tolist() == pytest.approx([2 / 3, 0.0])

    # Stepped metrics: step = round(100 * threshold); the tie at 0.90 is decided alone.
    def history(name: str) -> dict[int, float]:
        return {p.step: p.value for p in client.get_metric_history(run.info.run_id, name)}

    coverage = history("coverage_at_threshold")
    accuracy = history("auto_accuracy_at_threshold")
    missed = history("n_missed_mismatches_auto_accepted_at_threshold")
    assert sorted(coverage) == list(range(101))
    assert (coverage[0], coverage[30], coverage[31], coverage[90], coverage[91]) == (
        pytest.approx(1.0),
        pytest.approx(1.0),
        pytest.approx(5 / 6),
        pytest.approx(4 / 6),
        pytest.approx(2 / 6),
    )
    assert (coverage[99], coverage[100]) == (pytest.approx(1 / 6), 0.0)
    assert sorted(accuracy) == list(range(100))  # nothing automated at 1.00: no accuracy
    assert (accuracy[0], accuracy[90], accuracy[99]) == (pytest.approx(1 / 3), 0.5, 0.0)
    assert (missed[0], missed[90], missed[91]) == (2, 1, 0)


def test_run_episode_records_everything_in_sqlite(episode_files, tmp_path: Path) -> None:
    outcome, client, run = _recorded(
        episode_files["baseline"], tmp_path, "model.name=episode-reader", "model.version=1"
    )
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "episode-reader-v1"
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.name == "episode-verification"
    assert exp.artifact_location == (tmp_path / "mlartifacts").as_uri()

    metrics = run.data.metrics
    for name, value in outcome.result.metrics.items():
        if math.isfinite(value):
            assert metrics[name] == pytest.approx(value), name
    for name in (
        "episode_accuracy",
        "mismatch_precision",
        "mismatch_recall",
        "mismatch_f1",
        "coverage",
        "auto_accuracy",
        "n_missed_mismatches_auto_accepted",
        "n_false_flags_auto",
        "coverage_at_accuracy_0.99",
        "coverage_at_accuracy_0.99_threshold",
        "coverage_at_accuracy_0.99_ci_low",
        "coverage_at_accuracy_0.99_ci_high",
    ):
        assert name in metrics, name
    assert (
        metrics["coverage_at_accuracy_0.99_ci_low"]
        <= metrics["coverage_at_accuracy_0.99"]
        <= metrics["coverage_at_accuracy_0.99_ci_high"]
    )
    # The stepped metric at the configured threshold equals the headline numbers.
    cov = {
        p.step: p.value for p in client.get_metric_history(run.info.run_id, "coverage_at_threshold")
    }
    assert cov[90] == pytest.approx(metrics["coverage"])

    params = run.data.params
    assert params["episode.confidence_threshold"] == "0.9"
    assert params["episode.target_accuracy"] == "0.99"
    assert params["episode.group_by"] == "series_id"
    assert params["episode.bootstrap.n_resamples"] == "200"
    assert params["data.episodes"] == str(episode_files["baseline"])
    assert not any(k.startswith(("matching.", "sweep.")) for k in params)

    tags = run.data.tags
    assert tags["evaluator.task"] == "episode"
    assert tags["evaluator.version"]
    assert tags["model.name"] == "episode-reader" and tags["model.version"] == "1"
    assert len(tags["dataset.digest"]) == 64
    assert tags["dataset.digest"] == outcome.summary["dataset_digest"]
    assert run.inputs.dataset_inputs[0].dataset.digest == tags["dataset.digest"][:32]

    arts = artifact_paths(client, run.info.run_id)
    assert {
        "summary.json",
        "config.yaml",
        "confusion_matrix.json",
        "episode_videos.parquet",
        "episode_videos.json",
        "episode_sweep.parquet",
        "episode_sweep.json",
        "episode_groups.parquet",
        "episode_groups.json",
        "plots/risk_coverage.png",
    } <= arts
    summary = json.loads(
        Path(client.download_artifacts(run.info.run_id, "summary.json", str(tmp_path))).read_text()
    )
    assert summary["task"] == "episode"
    assert summary["metrics"]["episode_accuracy"] == pytest.approx(metrics["episode_accuracy"])
    videos = pd.read_parquet(
        client.download_artifacts(run.info.run_id, "episode_videos.parquet", str(tmp_path))
    )
    assert len(videos) == 300
    assert videos["episode_correct"].mean() == pytest.approx(metrics["episode_accuracy"])
    automated = videos[videos["decision"] != "human_review"]
    assert len(automated) / len(videos) == pytest.approx(metrics["coverage"])
    assert automated["decision_correct"].mean() == pytest.approx(metrics["auto_accuracy"])
    png = client.download_artifacts(run.info.run_id, "plots/risk_coverage.png", str(tmp_path))
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_digest_covers_the_evaluation_set_not_the_predictions(episode_files, tmp_path) -> None:
    db = tmp_path / "mlflow.db"
    a = run_episode(compose_config(_overrides(episode_files["baseline"], db)), tmp_path / "a")
    b = run_episode(compose_config(_overrides(episode_files["candidate"], db)), tmp_path / "b")
    assert a.summary["dataset_digest"] == b.summary["dataset_digest"]
    changed = pd.read_parquet(episode_files["baseline"])
    changed.loc[0, "true_episode"] += 1
    path = tmp_path / "changed.parquet"
    changed.to_parquet(path, index=False)
    c = run_episode(compose_config(_overrides(path, db)), tmp_path / "c", track=False)
    assert c.summary["dataset_digest"] != a.summary["dataset_digest"]


def test_row_order_changes_nothing(episode_files, tmp_path: Path) -> None:
    frame = pd.read_parquet(episode_files["baseline"])
    shuffled = tmp_path / "shuffled.csv"
    frame.sample(frac=1.0, random_state=1).to_csv(shuffled, index=False)
    cfg_a = compose_config(_overrides(episode_files["baseline"], tmp_path / "x.db"))
    cfg_b = compose_config(_overrides(shuffled, tmp_path / "x.db"))
    a = run_episode(cfg_a, tmp_path / "a", track=False)
    b = run_episode(cfg_b, tmp_path / "b", track=False)
    assert a.summary["metrics"] == b.summary["metrics"]
    assert a.summary["dataset_digest"] == b.summary["dataset_digest"]
    pd.testing.assert_frame_equal(a.video_table, b.video_table)


def test_no_series_column_no_breakdown_and_plots_off(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv"
    (tmp_path / "hand.csv").write_text(HAND_CSV)
    pd.read_csv(tmp_path / "hand.csv").drop(columns=["series_id", "season"]).to_csv(
        path, index=False
    )
    cfg = compose_config(_overrides(path, tmp_path / "x.db", "plots=false"))
    outcome = run_episode(cfg, tmp_path / "out", track=False)
    assert outcome.groups is None
    names = {p.name for p in outcome.files}
    assert "episode_groups.parquet" not in names and "risk_coverage.png" not in names
    assert outcome.result.metrics["coverage"] == pytest.approx(4 / 6)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("episode.confidence_threshold=1.5", r"episode.confidence_threshold must be in \[0, 1\]"),
        ("episode.target_accuracy=0", r"episode.target_accuracy must be in \(0, 1\]"),
        ("episode.bootstrap.n_resamples=0", r"episode.bootstrap.n_resamples must be >= 1"),
        ("data.episodes=null", r"data.episodes is required for task=episode"),
    ],
)
def test_bad_config_is_an_input_error(
    episode_files, tmp_path: Path, override: str, message: str
) -> None:
    cfg = compose_config(_overrides(episode_files["hand"], tmp_path / "x.db", override))
    with pytest.raises(InputError, match=message):
        run_episode(cfg, tmp_path / "out")
    assert not (tmp_path / "x.db").exists()


def test_bad_input_creates_no_run_and_no_outputs(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(HAND_CSV.replace("v4,B,1,6,7,0.99,6", "v4,B,1,6,7,1.2,6"))
    db = tmp_path / "mlflow.db"
    with pytest.raises(InputError, match=r"bad.csv: column 'confidence'.*row 4"):
        run_episode(compose_config(_overrides(bad, db)), tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert not db.exists()


def test_tracking_failure_marks_the_run_failed_and_keeps_outputs(episode_files, tmp_path) -> None:
    db = tmp_path / "mlflow.db"
    cfg = compose_config(
        _overrides(
            episode_files["hand"], db, "mlflow.artifact_location=file:///proc/video-eval-no-dir"
        )
    )
    with pytest.raises(TrackingError, match="FAILED"):
        run_episode(cfg, tmp_path / "out")
    assert (tmp_path / "out" / "summary.json").is_file()
    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name("episode-verification")
    runs = client.search_runs([exp.experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]


@pytest.mark.slow
def test_cli_task_episode_in_a_fresh_directory(episode_files, tmp_path: Path) -> None:
    proc = run_cli(
        [
            "task=episode",
            f"data.episodes={episode_files['candidate']}",
            "model.name=episode-reader",
            "model.version=2",
            "episode.bootstrap.n_resamples=200",
            "hydra.run.dir=out",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for fragment in (
        "video-eval episode: episodes_candidate.jsonl (300 videos)",
        "episode_accuracy",
        "mismatch precision",
        "at confidence >= 0.9: coverage",
        "coverage_at_accuracy_0.99",
        "mlflow ui --backend-store-uri sqlite:///mlflow.db",
    ):
        assert fragment in out, fragment
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs(
        [client.get_experiment_by_name("episode-verification").experiment_id]
    )
    assert run.info.run_id in out
    assert run.data.tags["evaluator.task"] == "episode"
    assert run.data.metrics["mismatch_f1"] == pytest.approx(summary["metrics"]["mismatch_f1"])
    assert (tmp_path / "out" / "plots" / "risk_coverage.png").is_file()


@pytest.mark.slow
def test_cli_episode_bad_input_exits_2_without_traceback_or_run(tmp_path: Path) -> None:
    bad = tmp_path / "episodes.jsonl"
    bad.write_text(
        '{"video_id": "a", "metadata_episode": 1, "predicted_episode": 1, "confidence": 0.5, '
        '"true_episode": 1}\n'
        '{"video_id": "a", "metadata_episode": 2, "predicted_episode": 2, "confidence": 0.5, '
        '"true_episode": 2}\n'
    )
    proc = run_cli(["task=episode", f"data.episodes={bad}", "hydra.run.dir=out"], tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "episodes.jsonl: column 'video_id': duplicate video id" in proc.stderr
    assert not (tmp_path / "out" / "summary.json").exists()
    assert not (tmp_path / "mlflow.db").exists()
    proc = run_cli(["task=episode", "hydra.run.dir=out"], tmp_path)
    assert proc.returncode == 2 and "data.episodes is required" in proc.stderr
    assert "Traceback" not in proc.stderr
