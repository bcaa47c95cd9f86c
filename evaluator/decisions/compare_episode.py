"""The paired comparison of two episode evaluations: per-video correctness -> deltas."""

from __future__ import annotations

import numpy as np
import pandas as pd

from evaluator.core.comparison import change_labels, diff_order
from evaluator.decisions.comparison import (
    EPISODE_METRIC,
    Comparison,
    ComparisonRequest,
    aligned_videos,
    paired_deltas,
    read_run_parquet,
)
from evaluator.errors import InputError


def prepare_episode(req: ComparisonRequest) -> Comparison:
    """The paired comparison of the request's two episode evaluations."""
    tracking_uri, cand, base, tmp = req.tracking_uri, req.candidate, req.baseline, req.tmp
    boot, extra_metrics, alpha = req.bootstrap, req.extra_metrics, req.one_sided_alpha
    warnings = list(req.warnings)
    unknown = [m for m in extra_metrics if m != EPISODE_METRIC]
    if unknown:
        raise InputError(
            f"episode comparison: no per-video values for {unknown}; episode evaluations are "
            f"compared on {EPISODE_METRIC} (use promote=episode for the promotion rule)."
        )
    cols = ["video_id", "predicted_episode", "true_episode", "confidence", "episode_correct"]
    name = "episode_videos.parquet"
    ct = read_run_parquet(tracking_uri, cand, name, tmp, cols)
    bt = read_run_parquet(tracking_uri, base, name, tmp, cols)
    ct, bt, align, warnings = aligned_videos(ct, bt, cand, base, warnings, "videos")
    c_ok = ct["episode_correct"].astype(bool).to_numpy()
    b_ok = bt["episode_correct"].astype(bool).to_numpy()
    paired = paired_deltas(c_ok.astype(np.float64), b_ok.astype(np.float64), boot, alpha)
    change = change_labels(c_ok, b_ok)
    video_diff = pd.DataFrame(
        {
            "video_id": pd.Series(align.video_ids, dtype="string"),
            "change": pd.Series(change, dtype="string"),
            "true_episode": ct["true_episode"].to_numpy(),
            "candidate_predicted_episode": ct["predicted_episode"].to_numpy(),
            "baseline_predicted_episode": bt["predicted_episode"].to_numpy(),
            "candidate_confidence": ct["confidence"].to_numpy(),
            "baseline_confidence": bt["confidence"].to_numpy(),
            "candidate_episode_correct": c_ok,
            "baseline_episode_correct": b_ok,
        }
    )
    video_diff = video_diff.iloc[diff_order(change, align.video_ids)].reset_index(drop=True)
    return Comparison(
        candidate=cand,
        baseline=base,
        task="episode",
        k_max=0,
        names=(EPISODE_METRIC,),
        paired=paired,
        headline=(EPISODE_METRIC,),
        change_metric=EPISODE_METRIC,
        video_diff=video_diff,
        curves=(),
        sweep=None,
        sweep_note="episode evaluations have no matching-threshold sweep",
        n_only_candidate=align.n_only_candidate,
        n_only_baseline=align.n_only_baseline,
        warnings=tuple(warnings),
        bootstrap=boot,
        one_sided_alpha=alpha,
        video_ids=align.video_ids,
        cand_values=c_ok.astype(np.float64)[:, None],
        base_values=b_ok.astype(np.float64)[:, None],
    )
