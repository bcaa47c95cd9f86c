"""Which frames can matter to an evaluation, decided before any vector exists.

An image embedder computes a vector per frame, and most frames of real tables take part in no
pair the match rule (or the threshold sweep) can ever look at: model frames past ``k_max``,
frames of videos that are not eligible, and pairs further apart in time than the largest
tolerance in use. `frames_to_embed` marks the frames that can: every metric, table column and
sweep cell is then the same whether the other frames carry their vectors or zero vectors,
because `evaluator.core.matching` defines the diagnostics that look at similarity without a
time condition (``max_cosine``, the ``nearest_*`` pair of a miss, the miss reason's
"similar enough" test, the gallery's ``near_similarity``) over the candidate pairs only:
pairs with ``|dt| <=`` `candidate_window_s`.

Exact duplicate expert rows (docs/metrics.md#poster-frames-the-test-set) compare vectors.
Two rows with the same video, timestamp and other columns showing the same frame
(``content`` code) have equal vectors whatever they are; rows that agree on everything but
show different frames may or may not, so they are always embedded: the deduplication, the
eligibility and ``n_expert_duplicates_dropped`` then come out exactly as with every vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evaluator.core.frames import Frames

# Pairs generated per chunk when looking for candidate pairs (a few tens of MB of scratch).
_CHUNK_PAIRS = 2_000_000


def candidate_window_s(time_tolerance_s: float, sweep_time_tolerances_s: Sequence[float]) -> float:
    """The largest time tolerance in use: the rule's, or the sweep's largest when it is larger.

    Example:
        >>> candidate_window_s(3.0, (0.5, 5.0))
        5.0
    """
    return float(max([float(time_tolerance_s), *map(float, sweep_time_tolerances_s)]))


@dataclass(frozen=True)
class FramesToEmbed:
    """The frames of both tables that need a vector.

    Attributes:
        experts: bool per expert row.
        model: bool per model row.
    """

    experts: np.ndarray
    model: np.ndarray

    @property
    def n_rows_left_out(self) -> int:
        """Rows of both tables that need no vector."""
        return int((~self.experts).sum() + (~self.model).sum())


def _rows_of_classes(codes: np.ndarray, needed: np.ndarray) -> np.ndarray:
    """Extend ``needed`` to every row whose class code is that of a needed row."""
    if not codes.size:
        return needed
    hit = np.zeros(int(codes.max()) + 1, dtype=bool)
    hit[codes[needed]] = True
    return hit[codes]


def frames_to_embed(
    experts: Frames,
    model: Frames,
    n_videos: int,
    *,
    expert_content: np.ndarray,
    k_max: int,
    min_expert_frames: int,
    window_s: float,
    keep_all_experts: bool = False,
) -> FramesToEmbed:
    """Mark the frames whose vectors can change a number of the evaluation.

    A model frame is needed when it is among the first ``k_max`` (by rank) of a video that can
    be eligible and some expert frame of that video lies within ``window_s`` of it; that
    expert frame is needed too. A video can be eligible when its expert rows, less the rows
    that surely repeat an earlier one, reach ``min_expert_frames``. Expert rows whose
    duplicate status depends on their vectors are needed, and every row showing the same frame
    as a needed row (same ``expert_content`` code, or for the model the same row) is needed.

    Args:
        experts: expert frames (``video``, ``timestamp``, ``row_key``; embeddings unused).
        model: model frames with ``rank``.
        n_videos: the number of video codes.
        expert_content: int64 per expert row: equal codes show the same frame (same file, same
            time), so their vectors are equal.
        k_max: model frames considered per video.
        min_expert_frames: expert frames a video needs to be scored.
        window_s: `candidate_window_s` of the settings.
        keep_all_experts: need every expert row of the videos that can be eligible (centring
            on the mean expert vector needs them all).

    Returns:
        The two masks.

    Raises:
        ValueError: the model frames carry no ranks.
    """
    if model.rank is None:
        raise ValueError("model frames need ranks")
    n_e = len(experts)
    row_key = experts.row_key if experts.row_key is not None else np.zeros(n_e, dtype=np.int64)
    ts_bits = (experts.timestamp.astype(np.float64) + 0.0).view(np.int64)
    content = np.asarray(expert_content, dtype=np.int64)
    if n_e:
        # A class: rows showing the same frame with the same (video, time, other columns).
        ident = np.stack([experts.video, ts_bits, row_key, content], axis=1)
        _, first, klass = np.unique(ident, axis=0, return_index=True, return_inverse=True)
        klass = klass.reshape(-1)
        kept = np.zeros(n_e, dtype=bool)
        kept[first] = True
        # Kept rows that share (video, time, other columns) but not the frame: duplicates or
        # not depending on their vectors.
        _, group, group_size = np.unique(
            ident[kept][:, :3], axis=0, return_inverse=True, return_counts=True
        )
        uncertain = np.zeros(n_e, dtype=bool)
        uncertain[np.flatnonzero(kept)] = group_size[group.reshape(-1)] > 1
    else:
        klass = np.zeros(0, dtype=np.int64)
        kept = uncertain = np.zeros(0, dtype=bool)
    upper = np.bincount(experts.video[kept], minlength=n_videos)
    maybe_eligible = upper >= min_expert_frames
    has_experts = np.bincount(experts.video, minlength=n_videos) > 0

    # The considered model frames: the first k_max by rank of videos with expert rows.
    n_m = len(model)
    order = np.lexsort((np.arange(n_m), model.rank, model.video))
    sorted_video = model.video[order]
    starts = np.searchsorted(sorted_video, sorted_video, side="left")
    position = np.arange(n_m) - starts
    considered = np.zeros(n_m, dtype=bool)
    considered[order] = (position < k_max) & has_experts[sorted_video]
    m_rows = np.flatnonzero(considered & maybe_eligible[model.video])

    need_e = uncertain.copy()
    if keep_all_experts:
        need_e |= kept & maybe_eligible[experts.video]
    need_m = np.zeros(n_m, dtype=bool)
    e_rows = np.flatnonzero(kept & maybe_eligible[experts.video])
    e_order = e_rows[np.lexsort((e_rows, experts.video[e_rows]))]
    e_count = np.bincount(experts.video[e_order], minlength=n_videos)
    e_start = np.zeros(n_videos, dtype=np.int64)
    np.cumsum(e_count[:-1], out=e_start[1:])
    per_model = e_count[model.video[m_rows]]
    bounds = np.cumsum(per_model)
    lo = 0
    while lo < len(m_rows):
        done = int(bounds[lo - 1]) if lo else 0
        hi = max(lo + 1, int(np.searchsorted(bounds, done + _CHUNK_PAIRS, side="right")))
        rows = m_rows[lo:hi]
        counts = per_model[lo:hi]
        pair_model = np.repeat(rows, counts)
        offset = np.arange(len(pair_model)) - np.repeat(np.cumsum(counts) - counts, counts)
        pair_expert = e_order[np.repeat(e_start[model.video[rows]], counts) + offset]
        # The same float64 |dt| the match rule computes.
        near = np.abs(model.timestamp[pair_model] - experts.timestamp[pair_expert]) <= window_s
        need_m[pair_model[near]] = True
        need_e[pair_expert[near]] = True
        lo = hi
    return FramesToEmbed(_rows_of_classes(klass, need_e), need_m)
