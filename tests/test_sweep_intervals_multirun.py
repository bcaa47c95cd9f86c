"""The sweep, the bootstrap intervals, the plots and multirun, as a user sees them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from evaluator.tasks.poster import run_poster
from tests.conftest import compose_config, run_cli, sqlite_run


def _cfg(demo_files, db: Path, *extra: str):
    return compose_config(
        [
            f"data.experts={demo_files['experts']}",
            f"data.predictions={demo_files['baseline']}",
            f"mlflow.tracking_uri=sqlite:///{db}",
            *extra,
        ]
    )


def test_sweep_parquet_points_equal_full_evaluations(demo_files, tmp_path: Path) -> None:
    run_poster(_cfg(demo_files, tmp_path / "db"), tmp_path / "base", track=False)
    sweep = pd.read_parquet(tmp_path / "base" / "sweep.parquet")
    assert list(sweep.columns) == ["time_tolerance_s", "min_cosine", "k", "recall"]
    assert len(sweep) == 11 * 21 * 10
    for tau, theta in [(0.0, 0.0), (1.5, 0.35), (3.0, 0.5), (10.0, 0.95), (7.5, 1.0)]:
        point = run_poster(
            _cfg(
                demo_files,
                tmp_path / "db",
                f"matching.time_tolerance_s={tau}",
                f"matching.min_cosine={theta}",
                "sweep.enabled=false",
                "plots=false",
            ),
            tmp_path / f"p{tau}-{theta}",
            track=False,
        )
        got = sweep[(sweep.time_tolerance_s == tau) & (sweep.min_cosine == theta)].sort_values("k")
        np.testing.assert_array_equal(got.recall.to_numpy(), point.result.recall_curve)


def test_intervals_are_deterministic_and_bracket_the_estimate(demo_files, tmp_path) -> None:
    a = run_poster(_cfg(demo_files, tmp_path / "db"), tmp_path / "a", track=False)
    b = run_poster(_cfg(demo_files, tmp_path / "db"), tmp_path / "b", track=False)
    c = run_poster(
        _cfg(demo_files, tmp_path / "db", "metrics.bootstrap.seed=1"), tmp_path / "c", track=False
    )
    for k in (1, 5, 10):
        lo, hi = (
            a.summary["metrics"][f"recall_at_{k}_ci_low"],
            a.summary["metrics"][f"recall_at_{k}_ci_high"],
        )
        assert lo <= a.summary["metrics"][f"recall_at_{k}"] <= hi and lo < hi
        assert b.summary["metrics"][f"recall_at_{k}_ci_low"] == lo
    assert any(
        c.summary["metrics"][f"recall_at_{k}_ci_low"]
        != a.summary["metrics"][f"recall_at_{k}_ci_low"]
        for k in (1, 5, 10)
    )


def test_mlflow_record_has_intervals_sweep_curves_and_plots(demo_files, tmp_path) -> None:
    db = tmp_path / "mlflow.db"
    out = run_poster(_cfg(demo_files, db), tmp_path / "out")
    client, run = sqlite_run(db, out.run.run_id)
    for k in (1, 5, 10):
        assert f"recall_at_{k}_ci_low" in run.data.metrics
        assert f"recall_at_{k}_ci_high" in run.data.metrics
    by_cos = client.get_metric_history(run.info.run_id, "sweep_recall_at_10_by_min_cosine")
    assert sorted(m.step for m in by_cos) == list(range(0, 101, 5))
    by_tau = client.get_metric_history(run.info.run_id, "sweep_recall_at_10_by_tolerance")
    assert sorted(m.step for m in by_tau) == [0, 5, 10, 15, 20, 25, 30, 40, 50, 75, 100]
    sweep = pd.read_parquet(tmp_path / "out" / "sweep.parquet")
    at = sweep[(sweep.time_tolerance_s == 3.0) & (sweep.k == 10)].set_index("min_cosine").recall
    for m in by_cos:
        assert m.value == pytest.approx(at[round(m.step / 100, 2)])
    # The configured point of both curves is the run's own recall@10.
    assert dict((m.step, m.value) for m in by_cos)[50] == pytest.approx(
        run.data.metrics["recall_at_10"]
    )
    names = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert names == {
        "plots/recall_at_k.png",
        "plots/sweep_recall_at_10.png",
        "plots/pairs.png",
        "plots/cosine_calibration.png",  # the run has vectors
    }
    for name in names:
        assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_configured_point_off_the_grid_is_added(demo_files, tmp_path: Path) -> None:
    out = run_poster(
        _cfg(
            demo_files,
            tmp_path / "db",
            "matching.time_tolerance_s=2.2",
            "matching.min_cosine=0.42",
            "plots=false",
        ),
        tmp_path / "o",
        track=False,
    )
    sweep = out.result.sweep
    assert 2.2 in sweep.time_tolerances_s and 0.42 in sweep.min_cosines


def test_sweep_and_bootstrap_can_be_switched_off(demo_files, tmp_path: Path) -> None:
    out = run_poster(
        _cfg(demo_files, tmp_path / "db", "sweep.enabled=false", "metrics.bootstrap.n_resamples=0"),
        tmp_path / "o",
        track=False,
    )
    assert out.result.sweep is None
    assert not (tmp_path / "o" / "sweep.parquet").exists()
    assert "recall_at_1_ci_low" not in out.summary["metrics"]


def test_time_only_plots(demo_files, tmp_path: Path) -> None:
    out = run_poster(
        _cfg(demo_files, tmp_path / "db", "matching.min_cosine=null"), tmp_path / "o", track=False
    )
    assert (tmp_path / "o" / "plots" / "pairs.png").is_file()
    assert (tmp_path / "o" / "plots" / "sweep_recall_at_10.png").is_file()
    assert np.isnan(out.result.sweep.min_cosines).all()


@pytest.mark.slow
def test_multirun_groups_runs_under_a_parent_with_a_comparison(demo_files, tmp_path) -> None:
    files = f"{demo_files['baseline']},{demo_files['candidate']}"
    proc = run_cli(
        [
            "-m",
            f"data.experts={demo_files['experts']}",
            f"data.predictions={files}",
            "hydra.sweep.dir=multi",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("poster-frames")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("evaluator.kind") == "multirun"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.info.run_name for r in children) == ["baseline", "candidate"]
    assert all(r.info.status == "FINISHED" for r in children)
    arts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"comparison.parquet", "comparison.json", "plots"} <= arts
    table = pd.read_parquet(tmp_path / "multi" / "comparison.parquet")
    assert sorted(table.run_name) == ["baseline", "candidate"]
    for _, row in table.iterrows():
        child = next(r for r in children if r.info.run_id == row.run_id)
        for col in ("recall_at_1", "recall_at_5_ci_low", "recall_at_10_ci_high", "mrr_at_10"):
            assert row[col] == pytest.approx(child.data.metrics[col])
    assert (tmp_path / "multi" / "plots" / "recall_at_k_comparison.png").is_file()


@pytest.mark.slow
def test_multirun_with_a_bad_file_reports_it_and_finishes_the_others(demo_files, tmp_path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("video_id,timestamp,rank\n")
    proc = run_cli(
        [
            "-m",
            f"data.experts={demo_files['experts']}",
            f"data.predictions={bad},{demo_files['candidate']}",
            "hydra.sweep.dir=multi",
        ],
        tmp_path,
    )
    assert proc.returncode == 2
    assert "bad.csv: the table is empty" in proc.stderr and "Traceback" not in proc.stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("poster-frames").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED"]
    parent = next(r for r in runs if r.data.tags.get("evaluator.kind") == "multirun")
    assert parent.data.metrics["n_jobs_failed"] == 1 and parent.data.metrics["n_models"] == 1
