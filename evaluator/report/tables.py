"""Result tables and the summary: the poster result as pandas frames and plain dicts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from evaluator.core.matching import MISS_REASONS
from evaluator.core.poster import PosterResult, SweepResult

# The match table's float columns, in table order.
_FLOAT_COLUMNS = (
    "best_model_timestamp",
    "best_expert_timestamp",
    "best_dt",
    "best_cosine",
    "min_dt",
    "max_cosine",
    "nearest_dt",
    "nearest_cosine",
)


def match_table(result: PosterResult, video_ids: np.ndarray) -> pd.DataFrame:
    """The per-video match table (docs/metrics.md#the-per-video-match-table): a row per video.

    Ineligible videos have null match columns. For eligible videos, ``first_hit_rank`` is null
    for a miss and ``miss_reason`` is "" for a hit.
    """
    n = result.n_videos
    m = result.matches
    rows = m.videos
    k_cols = result.settings.report_ks

    def scored(values: np.ndarray, dtype: str, *, zero_is_null: bool = False) -> pd.Series:
        full = pd.Series(pd.array([pd.NA] * n, dtype=dtype))
        s = pd.Series(values)
        if zero_is_null:
            s = s.where(s != 0, pd.NA)
        full.iloc[rows] = s.astype(dtype).to_numpy()
        return full

    table: dict[str, Any] = {
        "video_id": pd.Series(video_ids, dtype="string"),
        "eligible": result.eligible,
        "n_expert_frames": result.n_expert_frames,
        "n_model_frames": result.n_model_frames,
        "n_model_frames_truncated": result.n_model_frames_truncated,
        "first_hit_rank": scored(m.first_hit_rank, "Int64", zero_is_null=True),
    }
    fh = m.first_hit_rank
    for k in k_cols:
        table[f"hit_at_{k}"] = scored((fh >= 1) & (fh <= k), "boolean")
    table["n_matched_model_frames"] = scored(m.n_matched_model_frames, "Int64")
    table["n_matched_expert_frames"] = scored(m.n_matched_expert_frames, "Int64")
    table["best_model_rank"] = scored(m.best_model_rank, "Int64", zero_is_null=True)
    for name in _FLOAT_COLUMNS:
        table[name] = scored(getattr(m, name), "Float64")
    reasons = np.asarray(MISS_REASONS, dtype=object)[m.miss_reason]
    table["miss_reason"] = scored(reasons, "string")
    frame = pd.DataFrame(table)
    for name in _FLOAT_COLUMNS:
        # Float64 keeps NaN and NA apart; the table only needs "missing".
        frame[name] = frame[name].astype("float64")
    return frame.sort_values(
        ["eligible", "video_id"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)


def sweep_table(sweep: SweepResult) -> pd.DataFrame:
    """Long format: one row per (time_tolerance_s, min_cosine, k) with its recall."""
    k = sweep.recall.shape[2]
    tau, theta, kk = np.meshgrid(
        sweep.time_tolerances_s, sweep.min_cosines, np.arange(1, k + 1), indexing="ij"
    )
    return pd.DataFrame(
        {
            "time_tolerance_s": tau.ravel(),
            "min_cosine": theta.ravel(),
            "k": kk.ravel().astype(np.int64),
            "recall": sweep.recall.ravel(),
        }
    )
