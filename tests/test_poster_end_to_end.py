"""End to end: the CLI and `run_poster` against real MLflow stores (sqlite and a server)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from evaluator.errors import InputError, TrackingError
from evaluator.tasks.poster import run_poster
from evaluator.tasks.poster_files import COUNT_METRICS
from tests.conftest import artifact_paths, compose_config, run_cli, sqlite_run


def _overrides(demo_files: dict[str, Path], db: Path, model: str = "baseline") -> list[str]:
    return [
        f"data.experts={demo_files['experts']}",
        f"data.predictions={demo_files[model]}",
        f"mlflow.tracking_uri=sqlite:///{db}",
        "model.name=poster-ranker",
        "model.version=3",
    ]


def _video_eval(
    demo_files: dict[str, Path],
    predictions: Path,
    cwd: Path,
    *overrides: str,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """`video-eval` (a real process) in ``cwd`` on the demo experts and ``predictions``, with
    the outputs in cwd/out."""
    experts = f"data.experts={demo_files['experts']}"
    args = [experts, f"data.predictions={predictions}", *overrides, "hydra.run.dir=out"]
    return run_cli(args, cwd, env=env)


def test_run_poster_records_everything_in_sqlite(demo_files, tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    cfg = compose_config(_overrides(demo_files, db))
    outcome = run_poster(cfg, tmp_path / "out")
    client, run = sqlite_run(db, outcome.run.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "poster-ranker-v3"

    metrics = run.data.metrics
    for k in range(1, 11):
        assert metrics[f"recall_at_{k}"] == pytest.approx(outcome.result.metrics[f"recall_at_{k}"])
    counts = [m for m in COUNT_METRICS if m in outcome.result.metrics]
    assert len(counts) >= 6
    for name in ("mrr_at_10", "precision_at_10", "expert_coverage_at_10", *counts):
        assert metrics[name] == pytest.approx(outcome.result.metrics[name]), name
    curve = client.get_metric_history(run.info.run_id, "recall_at_k")
    assert sorted(m.step for m in curve) == list(range(1, 11))
    assert [m.value for m in sorted(curve, key=lambda m: m.step)] == pytest.approx(
        list(outcome.result.recall_curve)
    )

    params = run.data.params
    assert params["matching.time_tolerance_s"] == "3.0"
    assert params["matching.min_cosine"] == "0.5"
    assert params["metrics.k_max"] == "10"
    assert params["metrics.min_expert_frames"] == "5"
    assert params["data.predictions"] == str(demo_files["baseline"])
    assert params["embedder.name"] == "precomputed"

    tags = run.data.tags
    assert tags["evaluator.task"] == "poster"
    assert tags["model.name"] == "poster-ranker" and tags["model.version"] == "3"
    assert len(tags["dataset.digest"]) == 64
    assert tags["dataset.digest"] == outcome.summary["dataset_digest"]

    arts = artifact_paths(client, run.info.run_id)
    assert {
        "summary.json",
        "match_table.parquet",
        "match_table.json",
        "config.yaml",
        "sweep.parquet",
    } <= arts
    local = Path(client.download_artifacts(run.info.run_id, "summary.json", str(tmp_path)))
    assert json.loads(local.read_text())["metrics"]["recall_at_10"] == pytest.approx(
        metrics["recall_at_10"]
    )
    table = pd.read_parquet(
        client.download_artifacts(run.info.run_id, "match_table.parquet", str(tmp_path))
    )
    assert table["eligible"].sum() == metrics["n_videos_eligible"]
    assert table.loc[table.eligible, "hit_at_10"].mean() == pytest.approx(metrics["recall_at_10"])

    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1
    assert inputs[0].dataset.digest == tags["dataset.digest"][:32]

    # The artifact root sits next to the database, not in whatever directory we ran from.
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.name == "poster-frames"
    assert exp.artifact_location == (tmp_path / "mlartifacts").as_uri()


def test_same_expert_set_gives_the_same_digest(demo_files, tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    a = run_poster(compose_config(_overrides(demo_files, db)), tmp_path / "a")
    b = run_poster(compose_config(_overrides(demo_files, db, "candidate")), tmp_path / "b")
    c = run_poster(
        compose_config(_overrides(demo_files, db) + ["metrics.min_expert_frames=8"]), tmp_path / "c"
    )
    assert a.summary["dataset_digest"] == b.summary["dataset_digest"]
    assert a.summary["dataset_digest"] != c.summary["dataset_digest"]


def test_bad_input_creates_no_run_and_no_outputs(demo_files, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("video_id,timestamp,rank\na,-1,1\n")
    db = tmp_path / "mlflow.db"
    cfg = compose_config(
        _overrides(demo_files, db)[:1]
        + [f"data.predictions={bad}", f"mlflow.tracking_uri=sqlite:///{db}"]
    )
    with pytest.raises(InputError, match=r"bad.csv: column 'timestamp'.*row 1"):
        run_poster(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_tracking_failure_marks_the_run_failed_and_keeps_outputs(demo_files, tmp_path) -> None:
    db = tmp_path / "mlflow.db"
    # An artifact root that cannot be created (even as root): artifact logging fails mid-run.
    cfg = compose_config(
        _overrides(demo_files, db)
        + ["mlflow.artifact_location=file:///proc/video-eval-no-such-dir"]
    )
    with pytest.raises(TrackingError, match="FAILED"):
        run_poster(cfg, tmp_path / "out")
    assert (tmp_path / "out" / "summary.json").is_file()
    client = MlflowClient(f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("poster-frames").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
    assert "evaluator.error" in runs[0].data.tags


@pytest.mark.slow
def test_cli_end_to_end_in_a_fresh_directory(demo_files, tmp_path: Path) -> None:
    proc = _video_eval(
        demo_files, demo_files["candidate"], tmp_path, "model.name=poster-ranker", "model.version=4"
    )
    assert proc.returncode == 0, proc.stderr
    assert "recall@1" in proc.stdout and "recall@10" in proc.stdout and "mrr@10" in proc.stdout
    assert "mlflow ui --backend-store-uri sqlite:///mlflow.db" in proc.stdout
    # The embedded default: sqlite:///mlflow.db in the working directory.
    assert (tmp_path / "mlflow.db").is_file()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("poster-frames").experiment_id])
    assert run.info.run_id in proc.stdout
    assert run.data.metrics["recall_at_5"] == pytest.approx(summary["metrics"]["recall_at_5"])
    assert (tmp_path / "out" / "match_table.parquet").is_file()


@pytest.mark.slow
def test_cli_bad_input_exits_2_without_traceback(demo_files, tmp_path: Path) -> None:
    bad = tmp_path / "preds.jsonl"
    bad.write_text(
        '{"video_id": "a", "timestamp": 1.0, "rank": 1}\n'
        '{"video_id": "a", "timestamp": 2.0, "rank": 1}\n'
    )
    proc = _video_eval(demo_files, bad, tmp_path, "matching.min_cosine=null")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "preds.jsonl: column 'rank': duplicate rank within a video" in proc.stderr
    assert not (tmp_path / "out" / "summary.json").exists()
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
def test_cli_missing_required_path_and_misspelt_key(demo_files, tmp_path: Path) -> None:
    proc = run_cli([f"data.experts={demo_files['experts']}"], tmp_path)
    assert proc.returncode == 2 and "data.predictions is required" in proc.stderr
    proc = run_cli(["matching.min_cosin=0.3"], tmp_path)
    assert proc.returncode != 0 and "min_cosin" in proc.stderr


@pytest.mark.slow
def test_cli_honours_mlflow_tracking_uri_env(demo_files, tmp_path: Path) -> None:
    db = tmp_path / "elsewhere.db"
    proc = _video_eval(
        demo_files, demo_files["baseline"], tmp_path, env={"MLFLOW_TRACKING_URI": f"sqlite:///{db}"}
    )
    assert proc.returncode == 0, proc.stderr
    assert db.is_file() and not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
def test_cli_time_only_matching(demo_files, tmp_path: Path) -> None:
    proc = _video_eval(
        demo_files,
        demo_files["baseline"],
        tmp_path,
        "matching.min_cosine=null",
        "metrics.min_expert_frames=1",
        "matching.time_tolerance_s=0",
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["settings"]["min_cosine"] is None


@pytest.mark.slow
def test_against_a_real_tracking_server(demo_files, tmp_path: Path, mlflow_server: str) -> None:
    proc = _video_eval(
        demo_files,
        demo_files["baseline"],
        tmp_path,
        f"mlflow.tracking_uri={mlflow_server}",
        "mlflow.experiment=server-test",
    )
    assert proc.returncode == 0, proc.stderr
    assert mlflow_server in proc.stdout
    client = MlflowClient(mlflow_server)
    (run,) = client.search_runs([client.get_experiment_by_name("server-test").experiment_id])
    assert run.info.status == "FINISHED"
    assert {"summary.json", "match_table.parquet", "match_table.json"} <= artifact_paths(
        client, run.info.run_id
    )


@pytest.mark.slow
def test_unreachable_server_is_refused_before_the_work(demo_files, tmp_path: Path) -> None:
    """The bounded probe refuses a server that does not answer at once: exit 3, one
    paragraph, nothing evaluated (a server lost later is covered in test_reliability)."""
    proc = _video_eval(
        demo_files,
        demo_files["baseline"],
        tmp_path,
        "mlflow.tracking_uri=http://127.0.0.1:9",
        env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "3"},
    )
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr
    assert "http://127.0.0.1:9 does not answer" in proc.stderr
    assert "nothing was evaluated" in proc.stderr
    assert not (tmp_path / "out" / "summary.json").exists()
