"""The paired comparison of two poster evaluations: match tables -> per-video hits -> deltas."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from evaluator.core.bootstrap import bootstrap_mean_ci
from evaluator.core.paired_stats import (
    SweepDelta,
    change_labels,
    diff_order,
    poster_video_values,
    sweep_delta,
)
from evaluator.decisions.paired_runs import (
    BootstrapSettings,
    Comparison,
    ComparisonRequest,
    aligned_videos,
    paired_comparison,
    poster_settings,
    read_run_parquet,
)
from evaluator.errors import InputError
from evaluator.report.plots import Curve
from evaluator.tracking.registry import EvaluationRun, artifact_names


def _k_max(run: EvaluationRun) -> int:
    try:
        return int(run.params["metrics.k_max"])
    except (KeyError, ValueError):
        raise InputError(
            f"run {run.run_id} ({run.label}) has no valid param metrics.k_max; it is not a "
            f"poster evaluation recorded by video-eval."
        ) from None


def _first_hit_rank(table: pd.DataFrame) -> np.ndarray:
    return table["first_hit_rank"].astype("Float64").fillna(0).to_numpy(np.int64)


def _sweep_grid(frame: pd.DataFrame, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = frame[frame["k"] == k]
    tau = rows["time_tolerance_s"].to_numpy(np.float64)
    theta = rows["min_cosine"].to_numpy(np.float64)
    taus = np.unique(tau)
    if np.isnan(theta).all():
        thetas = np.array([np.nan])
        j = np.zeros(theta.shape[0], dtype=np.int64)
    else:
        thetas = np.unique(theta)
        j = np.searchsorted(thetas, theta)
    grid = np.full((taus.shape[0], thetas.shape[0]), np.nan)
    grid[np.searchsorted(taus, tau), j] = rows["recall"].to_numpy(np.float64)
    return taus, thetas, grid


def prepare_poster(req: ComparisonRequest) -> Comparison:
    """The paired comparison of the request's two poster evaluations."""
    cand, base, boot = req.candidate, req.baseline, req.bootstrap
    cols = ["video_id", "eligible", "first_hit_rank", "miss_reason"]
    tables = [
        read_run_parquet(req.tracking_uri, run, "match_table.parquet", req.tmp, cols)
        for run in (cand, base)
    ]
    k_max = min(_k_max(cand), _k_max(base))
    ct, bt = (t[t["eligible"].astype("boolean").fillna(False).to_numpy(bool)] for t in tables)
    ct, bt, align, warnings = aligned_videos(
        ct, bt, cand, base, list(req.warnings), "scored videos"
    )
    c_rank, b_rank = _first_hit_rank(ct), _first_hit_rank(bt)

    names = [f"recall_at_{k}" for k in range(1, k_max + 1)]
    names += [m for m in req.extra_metrics if m not in names]
    try:
        c_vals = np.column_stack([poster_video_values(c_rank, m, k_max) for m in names])
        b_vals = np.column_stack([poster_video_values(b_rank, m, k_max) for m in names])
    except ValueError as exc:
        raise InputError(f"poster comparison: {exc}.") from None
    report_ks = sorted({k for k in (1, 5, k_max) if k <= k_max})
    headline = [f"recall_at_{k}" for k in report_ks]
    headline += [m for m in req.extra_metrics if m not in headline]
    sweep, note = _sweep(req, k_max)
    return paired_comparison(
        req,
        align,
        warnings,
        (c_vals, b_vals),
        task="poster",
        names=names,
        k_max=k_max,
        headline=headline,
        change_metric=f"recall_at_{k_max}",
        video_diff=_video_diff(ct, bt, align.video_ids, k_max, report_ks),
        curves=[
            _curve(run.label, vals[:, :k_max], boot)
            for run, vals in ((cand, c_vals), (base, b_vals))
        ],
        sweep=sweep,
        sweep_note=note,
        settings=poster_settings(cand),
    )


def _video_diff(
    ct: pd.DataFrame, bt: pd.DataFrame, video_ids: np.ndarray, k_max: int, report_ks: list[int]
) -> pd.DataFrame:
    """The per-video difference table: ranks, hit flags per reported k, change at k_max."""
    c_rank, b_rank = _first_hit_rank(ct), _first_hit_rank(bt)
    c_hits = (c_rank >= 1) & (c_rank <= k_max)
    b_hits = (b_rank >= 1) & (b_rank <= k_max)
    change = change_labels(c_hits, b_hits)
    diff: dict[str, Any] = {
        "video_id": pd.Series(video_ids, dtype="string"),
        "change": pd.Series(change, dtype="string"),
        "candidate_first_hit_rank": pd.Series(c_rank, dtype="Int64").where(c_rank > 0),
        "baseline_first_hit_rank": pd.Series(b_rank, dtype="Int64").where(b_rank > 0),
    }
    for k in report_ks:
        diff[f"candidate_hit_at_{k}"] = (c_rank >= 1) & (c_rank <= k)
        diff[f"baseline_hit_at_{k}"] = (b_rank >= 1) & (b_rank <= k)
    diff["candidate_miss_reason"] = ct["miss_reason"].astype("string").fillna("")
    diff["baseline_miss_reason"] = bt["miss_reason"].astype("string").fillna("")
    video_diff = pd.DataFrame(diff)
    return video_diff.iloc[diff_order(change, video_ids)].reset_index(drop=True)


def _curve(label: str, hits: np.ndarray, boot: BootstrapSettings) -> Curve:
    """One model's recall@k curve with its marginal band over the compared videos (the two
    models' bands use the same resamples)."""
    band = bootstrap_mean_ci(
        hits, n_resamples=boot.n_resamples, confidence=boot.confidence, seed=boot.seed
    )
    return Curve(label, band.estimate, band.low, band.high)


def _sweep(req: ComparisonRequest, k_max: int) -> tuple[SweepDelta | None, str]:
    """The sweep delta at recall@K, or None and why there is none."""
    runs = (req.candidate, req.baseline)
    have = ["sweep.parquet" in artifact_names(req.tracking_uri, r.run_id) for r in runs]
    if not all(have):
        missing = [r.label for r, h in zip(runs, have, strict=True) if not h]
        return (
            None,
            f"no sweep delta: no sweep.parquet in {', '.join(missing)} (sweep.enabled=false)",
        )
    cols = ["time_tolerance_s", "min_cosine", "k", "recall"]
    cs, bs = (read_run_parquet(req.tracking_uri, r, "sweep.parquet", req.tmp, cols) for r in runs)
    try:
        return sweep_delta(*_sweep_grid(cs, k_max), *_sweep_grid(bs, k_max)), ""
    except ValueError as exc:
        return None, f"no sweep delta: {exc}"
