"""Slices end to end: evaluations record them, compare and promote test and gate them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from evaluator.decisions.compare_command import run_compare
from evaluator.decisions.promote_command import run_promote
from evaluator.demo.episode_data import make_episode_demo
from evaluator.demo.poster_data import make_demo_set
from evaluator.errors import InputError
from evaluator.integrations.register_command import register_poster_versions
from evaluator.tasks.poster import run_poster
from tests.conftest import EPISODE_DEMO_VERSIONS, compose_config, episode_demo_runs, run_cli

NAME = "slice-ranker"
GENRES = np.array(["anime", "드라마", "Action & Adventure", "news/current"], dtype=object)
FAST = ["sweep.enabled=false", "report.html=false", "plots=false"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """600 videos; 'regressed' = the better candidate, but lost on every anime video."""
    root = tmp_path_factory.mktemp("slices")
    demo = make_demo_set(600, dim=16, seed=5)
    paths = {"experts": root / "experts.parquet", "root": root}
    demo.experts.to_parquet(paths["experts"], index=False)
    for name, table in demo.models.items():
        paths[name] = root / f"{name}.parquet"
        table.to_parquet(paths[name], index=False)
    ids = np.sort(demo.experts["video_id"].unique())
    n = ids.shape[0]
    meta = pd.DataFrame(
        {
            "video_id": ids,
            "genre": GENRES[np.arange(n) % 4],
            "duration_s": np.arange(n) * 10.0,
        }
    )
    meta = meta.iloc[5:]  # 5 videos without metadata: (missing)
    ghosts = pd.DataFrame(
        {"video_id": ["ghost1", "ghost2"], "genre": ["x", "y"], "duration_s": [1.0, 2.0]}
    )
    paths["meta"] = root / "meta.csv"
    pd.concat([meta, ghosts]).to_csv(paths["meta"], index=False)
    anime = set(meta["video_id"][meta["genre"] == "anime"])
    cand = demo.models["candidate"].copy()
    lost = cand["video_id"].isin(anime).to_numpy()
    cand.loc[lost, "timestamp"] = cand.loc[lost, "timestamp"] + 10_000.0  # never near an expert
    paths["regressed"] = root / "regressed.parquet"
    cand.to_parquet(paths["regressed"], index=False)
    return paths


BINS = "slices.bins={duration_s:[0,1000,3000,inf]}"


def _evaluate(files, uri: str, model: str, version: str, *extra: str, slices: bool = True):
    overrides = [
        f"data.experts={files['experts']}",
        f"data.predictions={files[model]}",
        f"mlflow.tracking_uri={uri}",
        f"model.name={NAME}",
        f"model.version={version}",
        *FAST,
    ]
    if slices:
        overrides += [f"data.slices={files['meta']}", BINS]
    out = Path(uri.removeprefix("sqlite:///")).parent / f"out-{version}"
    return run_poster(compose_config([*overrides, *extra]), out)


def test_poster_evaluation_records_its_slices(files, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "out"
    cfg = compose_config(
        [
            f"data.experts={files['experts']}",
            f"data.predictions={files['baseline']}",
            f"data.slices={files['meta']}",
            BINS,
            f"mlflow.tracking_uri={uri}",
            "slices.min_videos=100",
        ]
    )
    outcome = run_poster(cfg, out)
    table = pd.read_parquet(out / "slices.parquet")
    # The naive reference: the match table joined to the metadata, grouped with pandas.
    mt = outcome.match_table[outcome.match_table["eligible"].astype(bool)]
    meta = pd.read_csv(files["meta"], dtype={"video_id": str}).set_index("video_id")
    rank = mt["first_hit_rank"].astype("Float64").fillna(0).to_numpy()
    ref = pd.DataFrame({"video_id": mt["video_id"].astype(str).to_numpy(), "rank": rank})
    ref["genre"] = meta["genre"].reindex(ref["video_id"]).fillna("(missing)").to_numpy()
    ref["hit10"] = (ref["rank"] >= 1) & (ref["rank"] <= 10)
    ref["rr"] = np.where(ref["hit10"], 1.0 / np.maximum(ref["rank"], 1), 0.0)
    genre = table[table["slice_column"] == "genre"].set_index("slice_value")
    expected = ref.groupby("genre").agg(
        n=("hit10", "size"), r=("hit10", "mean"), mrr=("rr", "mean")
    )
    assert sorted(genre.index) == sorted(expected.index)
    for value, row in expected.iterrows():
        assert genre.loc[value, "n_videos"] == row["n"]
        assert genre.loc[value, "recall_at_10"] == pytest.approx(row["r"], abs=1e-12)
        assert genre.loc[value, "mrr_at_10"] == pytest.approx(row["mrr"], abs=1e-12)
        assert genre.loc[value, "gated"] == (row["n"] >= 100)
    n_eligible = int(outcome.result.metrics["n_videos_eligible"])
    assert table.groupby("slice_column")["n_videos"].sum().tolist() == [n_eligible] * 2
    assert list(table[table["slice_column"] == "duration_s"]["slice_value"])[:3] == [
        "[0, 1000)",
        "[1000, 3000)",
        "[3000, inf)",
    ]
    # MLflow: the metric names are safe, the table maps them back to the text.
    run = MlflowClient(uri).get_run(outcome.run.run_id)
    m = run.data.metrics
    for key, value in zip(table["metric_key"], table["recall_at_10"], strict=True):
        assert m[f"{key}/recall_at_10"] == pytest.approx(value)
    assert "slice/genre/news_current/recall_at_10" in m
    assert "slice/genre/Action _ Adventure/mrr_at_10" in m
    assert "slice/genre/드라마/n_videos" in m
    assert "slice/duration_s/3000-inf/recall_at_10" in m
    summary = json.loads((out / "summary.json").read_text())["slices"]
    assert summary["n_slice_rows_unknown_videos"] == m["n_slice_rows_unknown_videos"] == 2
    n_missing = int((ref["genre"] == "(missing)").sum())
    assert summary["n_videos_without_slice_metadata"] == n_missing > 0
    assert summary["bins"] == {"duration_s": [0.0, 1000.0, 3000.0, "inf"]}
    assert run.data.params["slices.min_videos"] == "100"
    artifacts = {a.path for a in MlflowClient(uri).list_artifacts(run.info.run_id)}
    assert {"slices.parquet", "slice_videos.parquet", "slices.json"} <= artifacts
    videos = pd.read_parquet(out / "slice_videos.parquet")
    assert len(videos) == n_eligible and list(videos.columns) == ["video_id", "genre", "duration_s"]
    # The report: the forest plot, the table, and the gallery filter by slice.
    assert (out / "plots" / "slices_recall_at_10.png").stat().st_size > 0
    page = (out / "report.html").read_text()
    assert '<section id="slices">' in page and "news/current" in page
    assert '<select id="slice"' in page and '"slices":{"columns":["genre","duration_s"]' in page


def _store(files, tmp_path: Path, candidate: str = "regressed") -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _evaluate(files, uri, "baseline", "1")
    _evaluate(files, uri, candidate, "2")
    register_poster_versions(uri, NAME, ["1", "2"], champion="1")
    return uri


def _promote(uri: str, out: Path, *overrides: str):
    # A wide non-inferiority margin and no guardrail: only the slice gate can reject.
    cfg = compose_config(
        [
            f"mlflow.tracking_uri={uri}",
            f"model.name={NAME}",
            "model.version=2",
            "promote.min_delta=-0.5",
            "~promote.guardrails.recall_at_1",
            *overrides,
        ],
        "promote",
    )
    return run_promote(cfg, out)


def test_promote_rejects_a_regression_confined_to_one_genre(files, tmp_path: Path) -> None:
    uri = _store(files, tmp_path)
    outcome = _promote(uri, tmp_path / "p")
    assert not outcome.decision.promote
    reason = outcome.decision.reason
    assert reason.startswith("slice genre=anime (")
    assert "recall_at_10 -0." in reason and "Holm-adjusted p" in reason
    assert "genre=드라마" not in reason and "genre=Action" not in reason
    failed = [c for c in outcome.decision.checks if not c.passed]
    assert all(c.kind == "slice" for c in failed)
    sc = outcome.comparison.slices
    flagged = set(sc.table.loc[sc.table["significant_regression"], "slice_value"])
    assert "anime" in flagged and not flagged & {"드라마", "Action & Adventure", "news/current"}
    m = MlflowClient(uri).get_run(outcome.run.run_id).data.metrics
    anime = sc.table.set_index("slice_value").loc["anime"]
    assert m["slice/genre/anime/delta_recall_at_10"] == pytest.approx(anime["delta_recall_at_10"])
    assert m["n_slices_regressed"] == len(sc.table[sc.table["significant_regression"]])
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert "genre=anime" in summary["slices"]["regressions"]
    assert summary["promotion"]["rule"]["slices"]["adjust"] == "holm"
    # The same evidence with the gate off promotes; BH flags at least what Holm does.
    assert _promote(
        uri, tmp_path / "off", "promote.slices.block_on_regression=false"
    ).decision.promote
    bh = _promote(uri, tmp_path / "bh", "promote.slices.adjust=bh")
    assert not bh.decision.promote
    assert flagged <= set(bh.comparison.slices.table.query("significant_regression")["slice_value"])


def test_promote_passes_the_slice_gate_without_a_regression(files, tmp_path: Path) -> None:
    uri = _store(files, tmp_path, candidate="candidate")
    outcome = _promote(uri, tmp_path / "p")
    assert outcome.decision.promote
    assert "no slice regresses significantly on recall_at_10" in outcome.decision.reason


def test_compare_reports_slices_and_refuses_slices_on_one_side(files, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    base = _evaluate(files, uri, "baseline", "1").run.run_id
    cand = _evaluate(files, uri, "regressed", "2").run.run_id
    plain = _evaluate(files, uri, "candidate", "3", slices=False).run.run_id

    def compare(c: str, b: str, *extra: str):
        cfg = compose_config(
            [f"mlflow.tracking_uri={uri}", f"candidate={c}", f"baseline={b}", *extra], "compare"
        )
        return run_compare(cfg, tmp_path / f"cmp-{c[:6]}-{len(extra)}")

    outcome = compare(cand, base)
    t = outcome.comparison.slices.table
    assert {"mcnemar_p", "mcnemar_p_adjusted", "p_regression_adjusted", "metric_key"} <= set(
        t.columns
    )
    assert t.groupby("slice_column")["n_videos"].sum().tolist() == [outcome.comparison.n_videos] * 2
    assert (tmp_path / f"cmp-{cand[:6]}-0" / "slice_comparison.parquet").is_file()
    with pytest.raises(
        InputError, match=r"the baseline .* was evaluated with slices .* but the candidate"
    ):
        compare(plain, base)
    assert compare(plain, base, "slices.enabled=false").comparison.slices is None
    with pytest.raises(InputError, match=r"slices\.adjust must be one of"):
        compare(cand, base, "slices.adjust=bonferroni")


def test_evaluations_that_disagree_on_the_metadata_are_not_aligned(files, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    base = _evaluate(files, uri, "baseline", "1").run.run_id
    other = pd.read_csv(files["meta"], dtype={"video_id": str})
    other.loc[other["genre"] == "anime", "genre"] = "kids"
    path = tmp_path / "other.csv"
    other.to_csv(path, index=False)
    cand = _evaluate(files, uri, "candidate", "2", f"data.slices={path}").run.run_id
    cfg = compose_config(
        [f"mlflow.tracking_uri={uri}", f"candidate={cand}", f"baseline={base}"], "compare"
    )
    with pytest.raises(
        InputError,
        match=r"\d+ compared video\(s\) in different slices of column 'genre', e\.g\. "
        r"vid\d+ \('kids' vs 'anime'\)",
    ):
        run_compare(cfg, tmp_path / "c")
    cfg = compose_config(
        [
            f"mlflow.tracking_uri={uri}",
            f"candidate={cand}",
            f"baseline={base}",
            "allow_mismatch=true",
        ],
        "compare",
    )
    outcome = run_compare(cfg, tmp_path / "c2")
    assert any("the candidate's slices are used" in w for w in outcome.comparison.warnings)


def test_episode_slices_and_their_comparison(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    demo = make_episode_demo(400, seed=2)
    meta = tmp_path / "meta.parquet"
    demo.truth[["video_id", "series_id", "season"]].to_parquet(meta, index=False)
    overrides = (f"data.slices={meta}", "slices.categorical=[season]", "plots=false")
    outcomes = episode_demo_runs(demo, tmp_path, uri, *overrides)
    runs = {}
    for version, key in EPISODE_DEMO_VERSIONS:
        outcome = outcomes[version]
        runs[version] = outcome.run.run_id
        table = pd.read_parquet(tmp_path / key / "slices.parquet")
        groups = outcome.groups.set_index("series_id")
        series = table[table["slice_column"] == "series_id"].set_index("slice_value")
        for col in ("n_videos", "episode_accuracy", "mismatch_precision", "mismatch_recall"):
            np.testing.assert_allclose(series[col].to_numpy(float), groups.loc[series.index, col])
        assert "coverage_at_accuracy_0.99" in table.columns
    cfg = compose_config(
        [f"mlflow.tracking_uri={uri}", f"candidate={runs['2']}", f"baseline={runs['1']}"], "compare"
    )
    c = run_compare(cfg, tmp_path / "cmp").comparison
    assert c.slices.metric == "episode_accuracy"
    assert set(c.slices.table["slice_column"]) == {"series_id", "season"}


@pytest.mark.slow
def test_bad_slices_file_exits_2_without_a_run(files, tmp_path: Path) -> None:
    bad = tmp_path / "dup.csv"
    bad.write_text("video_id,genre\nvid000001,a\nvid000001,b\n")
    done = run_cli(
        [
            f"data.experts={files['experts']}",
            f"data.predictions={files['baseline']}",
            f"data.slices={bad}",
            "hydra.run.dir=out",
        ],
        tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "dup.csv: column 'video_id': duplicate video id" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "mlflow.db").exists()
