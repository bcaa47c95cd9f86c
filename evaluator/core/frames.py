"""Array containers for frames and the preparation steps that precede matching.

Everything here is pure numpy. Video ids arrive as integer codes (``0 .. n_videos - 1``); the
io layer owns the mapping to the string ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Frames:
    """A table of frames as aligned arrays.

    Attributes:
        video: int64 video codes, shape (n,).
        timestamp: float64 seconds from the start of the video, shape (n,).
        embedding: (n, D) float array, or None when matching is time-only.
        rank: int64 rank of a model frame (1 = best), or None for expert frames.
        row_key: int64 code of the row's other columns (annotator, frame_id, ...), used only
            to decide which expert rows are exact duplicates; None when there are none.
    """

    video: np.ndarray
    timestamp: np.ndarray
    embedding: np.ndarray | None = None
    rank: np.ndarray | None = None
    row_key: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.video.shape[0])

    def take(self, index: np.ndarray) -> Frames:
        """Return the rows at ``index`` (an integer or boolean index array)."""

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[index]

        return Frames(
            video=self.video[index],
            timestamp=self.timestamp[index],
            embedding=pick(self.embedding),
            rank=pick(self.rank),
            row_key=pick(self.row_key),
        )


def ranks_from_scores(video: np.ndarray, score: np.ndarray, timestamp: np.ndarray) -> np.ndarray:
    """Turn model scores into ranks within each video.

    rank = position in the order by score descending, ties broken by the earlier timestamp
    (then by row order, so the result is deterministic).

    Args:
        video: int video codes, shape (n,).
        score: float scores, higher is better, shape (n,).
        timestamp: float64 timestamps, shape (n,).

    Returns:
        int64 ranks starting at 1 within each video, shape (n,).

    Example:
        >>> ranks_from_scores(np.array([0, 0, 0]), np.array([0.5, 0.9, 0.5]),
        ...                   np.array([4.0, 1.0, 2.0])).tolist()
        [3, 1, 2]
    """
    n = video.shape[0]
    order = np.lexsort((np.arange(n), timestamp, -np.asarray(score, dtype=np.float64), video))
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = _position_in_group(video[order]) + 1
    return ranks


def _position_in_group(sorted_codes: np.ndarray) -> np.ndarray:
    """0-based position of each element within its run of equal codes (input sorted)."""
    n = sorted_codes.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    run_lengths = np.diff(np.r_[starts, n])
    return np.arange(n, dtype=np.int64) - np.repeat(starts, run_lengths)


def exact_duplicate_mask(frames: Frames) -> np.ndarray:
    """Mark rows that repeat an earlier row exactly (same video, timestamp, embedding, row key).

    The first occurrence is kept. Comparison is on exact values (``-0.0`` equals ``0.0``).

    Args:
        frames: the expert frames.

    Returns:
        Boolean array, True for the rows to drop.
    """
    n = len(frames)
    row_key = frames.row_key if frames.row_key is not None else np.zeros(n, dtype=np.int64)
    order = np.lexsort((row_key, frames.timestamp, frames.video))
    v, t, r = frames.video[order], frames.timestamp[order], row_key[order]
    same_as_prev = (v[1:] == v[:-1]) & (t[1:] == t[:-1]) & (r[1:] == r[:-1])
    drop = np.zeros(n, dtype=bool)
    if not same_as_prev.any():
        return drop
    # Only rows that share (video, timestamp, row key) with a neighbour can be duplicates;
    # compare their full byte content, which is exact and cheap because such rows are rare.
    in_group = np.zeros(n, dtype=bool)
    in_group[1:] |= same_as_prev
    in_group[:-1] |= same_as_prev
    candidates = np.sort(order[in_group])
    parts = [
        frames.video[candidates].astype("<i8").view(np.uint8).reshape(-1, 8),
        (frames.timestamp[candidates] + 0.0).astype("<f8").view(np.uint8).reshape(-1, 8),
        row_key[candidates].astype("<i8").view(np.uint8).reshape(-1, 8),
    ]
    if frames.embedding is not None:
        emb = np.ascontiguousarray(frames.embedding[candidates] + 0.0)
        parts.append(emb.view(np.uint8).reshape(len(candidates), -1))
    rows = np.concatenate(parts, axis=1)
    _, first = np.unique(rows, axis=0, return_index=True)
    keep = np.zeros(len(candidates), dtype=bool)
    keep[first] = True
    drop[candidates[~keep]] = True
    return drop


@dataclass(frozen=True)
class Grouped:
    """Frames sorted by video with per-video offsets.

    Embeddings are not copied: ``rows`` maps each sorted position to its row in the original
    table, and ``embedding`` is the original (n, D) array (None when time-only).

    Attributes:
        video: int64 video code per sorted row.
        timestamp: float64 timestamp per sorted row.
        rows: int64 original row index per sorted row.
        start: int64 offset of each video's first sorted row, shape (n_videos,).
        count: int64 number of rows per video, shape (n_videos,).
        embedding: the original embedding array, indexed by ``rows``.
    """

    video: np.ndarray
    timestamp: np.ndarray
    rows: np.ndarray
    start: np.ndarray
    count: np.ndarray
    embedding: np.ndarray | None

    def __len__(self) -> int:
        return int(self.rows.shape[0])


def group_by_video(
    frames: Frames, n_videos: int, order_key: np.ndarray, subset: np.ndarray | None = None
) -> Grouped:
    """Sort rows ``subset`` (default: all) by (video, order_key, row) with per-video offsets.

    Args:
        frames: the table.
        n_videos: number of video codes.
        order_key: per-row sort key within a video (timestamp, rank, position), shape (n,).
        subset: original row indices to keep, or None for all rows.
    """
    idx = np.arange(len(frames)) if subset is None else np.asarray(subset, dtype=np.int64)
    order = np.lexsort((idx, order_key[idx], frames.video[idx]))
    rows = idx[order]
    video = frames.video[rows]
    count = np.bincount(video, minlength=n_videos).astype(np.int64)
    start = np.zeros(n_videos, dtype=np.int64)
    np.cumsum(count[:-1], out=start[1:])
    return Grouped(video, frames.timestamp[rows], rows, start, count, frames.embedding)


def _scatter(values: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """An (n,) array with ``values`` placed at ``rows`` (back to original row order)."""
    out = np.zeros(n, dtype=values.dtype)
    out[rows] = values
    return out


def group_for_matching(
    experts: Frames, model: Frames, n_videos: int, expert_keep: np.ndarray, k_max: int
) -> tuple[Grouped, Grouped, Grouped, np.ndarray]:
    """Group kept expert rows by timestamp and the considered model frames by rank.

    Returns:
        (experts grouped, considered model frames grouped, all model frames grouped, mask over
        the all-model order of frames past k_max of videos that have expert frames).
    """
    exp_grouped = group_by_video(experts, n_videos, experts.timestamp, np.flatnonzero(expert_keep))
    has_experts = exp_grouped.count > 0
    if model.rank is None:
        raise ValueError("model frames need ranks")
    all_model = group_by_video(model, n_videos, model.rank)
    position = np.arange(len(all_model)) - all_model.start[all_model.video]
    known = has_experts[all_model.video]
    keep_model = known & (position < k_max)
    truncated_rows = known & (position >= k_max)
    mod_grouped = group_by_video(
        model,
        n_videos,
        _scatter(position, all_model.rows, len(model)),
        all_model.rows[keep_model],
    )
    return exp_grouped, mod_grouped, all_model, truncated_rows
