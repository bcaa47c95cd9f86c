"""The paired comparison of two poster evaluations: match tables -> per-video hits -> deltas."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from evaluator.core.bootstrap import bootstrap_mean_ci
from evaluator.core.paired_stats import change_labels, diff_order, poster_video_values, sweep_delta
from evaluator.decisions.paired_runs import (
    Comparison,
    ComparisonRequest,
    aligned_videos,
    paired_deltas,
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
    tracking_uri, cand, base, tmp = req.tracking_uri, req.candidate, req.baseline, req.tmp
    boot, extra_metrics, alpha = req.bootstrap, req.extra_metrics, req.one_sided_alpha
    warnings = list(req.warnings)
    cols = ["video_id", "eligible", "first_hit_rank", "miss_reason"]
    tables = {
        "candidate": read_run_parquet(tracking_uri, cand, "match_table.parquet", tmp, cols),
        "baseline": read_run_parquet(tracking_uri, base, "match_table.parquet", tmp, cols),
    }
    k_max = min(_k_max(cand), _k_max(base))
    for side, t in tables.items():
        tables[side] = t[t["eligible"].astype("boolean").fillna(False).to_numpy(bool)]
    ct, bt, align, warnings = aligned_videos(
        tables["candidate"], tables["baseline"], cand, base, warnings, "scored videos"
    )
    c_rank, b_rank = _first_hit_rank(ct), _first_hit_rank(bt)

    names = [f"recall_at_{k}" for k in range(1, k_max + 1)]
    names += [m for m in extra_metrics if m not in names]
    try:
        c_vals = np.column_stack([poster_video_values(c_rank, m, k_max) for m in names])
        b_vals = np.column_stack([poster_video_values(b_rank, m, k_max) for m in names])
    except ValueError as exc:
        raise InputError(f"poster comparison: {exc}.") from None
    paired = paired_deltas(c_vals, b_vals, boot, alpha)
    report_ks = sorted({k for k in (1, 5, k_max) if k <= k_max})
    headline = [f"recall_at_{k}" for k in report_ks]
    headline += [m for m in extra_metrics if m not in headline]

    # Per-video difference table: ranks, hit flags per reported k, change at k_max.
    c_hits = (c_rank >= 1) & (c_rank <= k_max)
    b_hits = (b_rank >= 1) & (b_rank <= k_max)
    change = change_labels(c_hits, b_hits)
    diff: dict[str, Any] = {
        "video_id": pd.Series(align.video_ids, dtype="string"),
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
    video_diff = video_diff.iloc[diff_order(change, align.video_ids)].reset_index(drop=True)

    # Marginal bands of each model's curve over the compared videos (same resamples).
    curves = []
    for run, vals in ((cand, c_vals), (base, b_vals)):
        band = bootstrap_mean_ci(
            vals[:, :k_max],
            n_resamples=boot.n_resamples,
            confidence=boot.confidence,
            seed=boot.seed,
        )
        curves.append(Curve(run.label, band.estimate, band.low, band.high))

    sweep, note = None, ""
    have = ["sweep.parquet" in artifact_names(tracking_uri, r.run_id) for r in (cand, base)]
    if all(have):
        sweep_cols = ["time_tolerance_s", "min_cosine", "k", "recall"]
        cs = read_run_parquet(tracking_uri, cand, "sweep.parquet", tmp, sweep_cols)
        bs = read_run_parquet(tracking_uri, base, "sweep.parquet", tmp, sweep_cols)
        try:
            sweep = sweep_delta(*_sweep_grid(cs, k_max), *_sweep_grid(bs, k_max))
        except ValueError as exc:
            note = f"no sweep delta: {exc}"
    else:
        missing = [r.label for r, h in zip((cand, base), have, strict=True) if not h]
        note = f"no sweep delta: no sweep.parquet in {', '.join(missing)} (sweep.enabled=false)"
    return Comparison(
        candidate=cand,
        baseline=base,
        task="poster",
        k_max=k_max,
        names=tuple(names),
        paired=paired,
        headline=tuple(headline),
        change_metric=f"recall_at_{k_max}",
        video_diff=video_diff,
        curves=tuple(curves),
        sweep=sweep,
        sweep_note=note,
        n_only_candidate=align.n_only_candidate,
        n_only_baseline=align.n_only_baseline,
        warnings=tuple(warnings),
        bootstrap=boot,
        one_sided_alpha=alpha,
        settings=poster_settings(cand),
        video_ids=align.video_ids,
        cand_values=c_vals,
        base_values=b_vals,
    )
