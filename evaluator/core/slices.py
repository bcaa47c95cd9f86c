"""Metrics per slice of the catalog (genre, series, length bin, ...), from per-video results.

A *slice* is one value of one metadata column: ``genre = anime``, ``duration_s = [0, 600)``.
Every eligible video falls in exactly one slice of each column (videos without a value form
the slice ``(missing)``), so the slice counts of a column add up to the whole test set.

Everything here works on per-video arrays (first-hit rank, episode correctness) and integer
slice codes, with ``np.bincount`` over the codes: no loop per video. The interval of a
slice's recall is the same percentile bootstrap as the whole set's, over the slice's videos
(one call per slice, never per video).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evaluator.core.bootstrap import bootstrap_mean_ci
from evaluator.core.episode import GroupMetrics, group_metrics
from evaluator.core.episode_inputs import Videos, ratio

__all__ = [
    "MISSING",
    "SliceAssignment",
    "assign_slices",
    "bin_codes",
    "episode_slice_metrics",
    "group_bounds",
    "metric_key_segments",
    "poster_slice_metrics",
    "slice_intervals",
    "slice_metric_keys",
]

MISSING = "(missing)"

# MLflow (3.x) metric names may hold word characters (any script), "_", "-", ".", " ", "/"
# (and ":" except on Windows), must normalize to themselves as a POSIX path and are at most
# 250 characters long. A segment keeps the word characters, "-", "." and " "; others become
# "_". The lengths leave room for the longest suffix ("/" + 40 characters).
_UNSAFE = re.compile(r"[^\w.\- ]")
MAX_COLUMN_SEGMENT = 60
MAX_VALUE_SEGMENT = 140


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def _segment(text: str, limit: int) -> str:
    safe = _UNSAFE.sub("_", text).strip()
    if safe in ("", ".", ".."):
        safe = "_" * max(1, len(safe))
    if len(safe) > limit:
        safe = f"{safe[: limit - 9].rstrip()}-{_digest(text)}"
    return safe


def metric_key_segments(values: Sequence[str], limit: int = MAX_VALUE_SEGMENT) -> list[str]:
    """One MLflow-safe, distinct path segment per distinct value.

    Characters MLflow refuses in a metric name (and ``/``, which would add a level) become
    ``_``; leading and trailing spaces are dropped; ``.`` / ``..`` / empty become ``_``.
    Values that would share a segment each get ``-`` plus the first 8 hex digits of the
    SHA-1 of their text appended, so the mapping is one-to-one and does not depend on the
    order of the values.

    Args:
        values: Distinct texts (e.g. the values of one slice column).
        limit: Longest segment (longer ones are cut and suffixed with their digest).

    Returns:
        The segments, in the order of ``values``.

    Example:
        >>> metric_key_segments(["Action & Adventure", "드라마", "a/b", "(missing)"])
        ['Action _ Adventure', '드라마', 'a_b', '_missing_']
    """
    safe = [_segment(v, limit) for v in values]
    seen: dict[str, int] = {}
    for s in safe:
        seen[s] = seen.get(s, 0) + 1
    out = []
    for value, s in zip(values, safe, strict=True):
        if seen[s] > 1:
            s = f"{s[: limit - 9]}-{_digest(value)}"
        out.append(s)
    if len(set(out)) != len(out):  # a digest collision among 8 hex digits: use the full one
        full = [hashlib.sha1(v.encode("utf-8")).hexdigest() for v in values]
        out = [f"{s}-{h}" for s, h in zip(out, full, strict=True)]
    return out


def slice_metric_keys(
    column: str, values: Sequence[str], segments: Sequence[str] | None = None
) -> list[str]:
    """``slice/<column>/<value>`` per value: the prefix of the slice's MLflow metric names.

    The metrics are ``<prefix>/recall_at_10``, ``<prefix>/mrr_at_10``, ... Column and value
    are made safe with :func:`metric_key_segments` (``segments`` overrides the value part,
    e.g. ``0-600`` for the bin ``[0, 600)``).

    Example:
        >>> slice_metric_keys("genre", ["SF/Fantasy", "드라마"])
        ['slice/genre/SF_Fantasy', 'slice/genre/드라마']
    """
    col = metric_key_segments([column], MAX_COLUMN_SEGMENT)[0]
    segs = list(segments) if segments is not None else metric_key_segments(values)
    return [f"slice/{col}/{s}" for s in segs]


# ----------------------------------------------------------------------------- numeric bins


def _edge_text(x: float) -> str:
    return "inf" if x == math.inf else "-inf" if x == -math.inf else f"{x:g}"


def bin_codes(
    values: np.ndarray, edges: Sequence[float]
) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...], np.ndarray]:
    """Put numbers into bins ``[e0, e1), [e1, e2), ..., [e_{n-1}, e_n]``.

    Every bin includes its lower edge and excludes its upper one, except the last, which
    includes a finite upper edge (as ``numpy.histogram`` does): with edges ``[0, 600, 1800,
    inf]`` a 600-second video is in ``[600, 1800)``.

    Args:
        values: float64 numbers, shape (n,); NaN = no value.
        edges: At least two strictly increasing edges (``-inf`` / ``inf`` allowed).

    Returns:
        ``(codes, labels, segments, outside)``: the bin per value (-1 for NaN and for values
        outside the edges), the bin labels (``"[0, 600)"``), their metric-key segments
        (``"0-600"``) and a bool mask of the non-NaN values outside every bin.

    Raises:
        ValueError: Fewer than two edges, NaN edges, or edges not strictly increasing.

    Example:
        >>> codes, labels, _, outside = bin_codes(np.array([0, 599.9, 600, 1800, 5e4]),
        ...                                       [0, 600, 1800, math.inf])
        >>> codes.tolist(), labels
        ([0, 0, 1, 2, 2], ('[0, 600)', '[600, 1800)', '[1800, inf)'))
    """
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.shape[0] < 2 or np.isnan(e).any() or not np.all(np.diff(e) > 0):
        raise ValueError(f"bins must be at least two strictly increasing edges, got {list(edges)}")
    x = np.asarray(values, dtype=np.float64)
    codes = np.searchsorted(e, x, side="right") - 1
    last_closed = np.isfinite(e[-1])
    if last_closed:
        codes = np.where(x == e[-1], e.shape[0] - 2, codes)
    inside = (codes >= 0) & (codes <= e.shape[0] - 2) & ~np.isnan(x)
    codes = np.where(inside, codes, -1).astype(np.int64)
    n_bins = e.shape[0] - 1
    labels = tuple(
        f"[{_edge_text(e[i])}, {_edge_text(e[i + 1])}"
        + ("]" if i == n_bins - 1 and last_closed else ")")
        for i in range(n_bins)
    )
    segments = tuple(f"{_edge_text(e[i])}-{_edge_text(e[i + 1])}" for i in range(n_bins))
    return codes, labels, segments, ~inside & ~np.isnan(x)


# ----------------------------------------------------------------------------- assignment


@dataclass(frozen=True, eq=False)
class SliceAssignment:
    """The slice of every evaluated video in every slice column.

    Attributes:
        columns: The slice columns.
        values: Per column, its values in display order (``MISSING`` last when used).
        segments: Per column, the metric-key segment of each value.
        codes: int64 (n_videos, n_columns): index into ``values[c]`` of each video.
        n_missing: Per column, videos with no value (not in the metadata, or a null cell).
        n_unmatched: Videos not in the metadata at all.
    """

    columns: tuple[str, ...]
    values: tuple[tuple[str, ...], ...]
    segments: tuple[tuple[str, ...], ...]
    codes: np.ndarray
    n_missing: tuple[int, ...]
    n_unmatched: int

    @property
    def n_videos(self) -> int:
        """Videos assigned."""
        return int(self.codes.shape[0])


def assign_slices(
    video_ids: np.ndarray,
    meta_ids: np.ndarray,
    columns: Sequence[str],
    meta_codes: Sequence[np.ndarray],
    values: Sequence[Sequence[str]],
    segments: Sequence[Sequence[str] | None],
) -> SliceAssignment:
    """Look every evaluated video up in the metadata and give it its slice per column.

    Args:
        video_ids: The evaluated videos' ids, shape (n,), unique.
        meta_ids: The metadata rows' video ids, shape (r,), unique.
        columns: The slice columns.
        meta_codes: Per column, the value index of each metadata row (-1 = no value).
        values: Per column, its values (without ``MISSING``).
        segments: Per column, metric-key segments of the values, or None (derived).

    Returns:
        The :class:`SliceAssignment`; values no evaluated video has are dropped, and
        ``MISSING`` is appended to a column where some video has no value.
    """
    ids = np.asarray(video_ids).astype(str)
    meta = np.asarray(meta_ids).astype(str)
    order = np.argsort(meta, kind="stable")
    pos = np.searchsorted(meta[order], ids)
    pos = np.minimum(pos, max(meta.shape[0] - 1, 0))
    row = order[pos] if meta.shape[0] else np.zeros(ids.shape[0], dtype=np.int64)
    found = (meta[row] == ids) if meta.shape[0] else np.zeros(ids.shape[0], dtype=bool)
    all_codes, all_values, all_segments, n_missing = [], [], [], []
    if not (len(columns) == len(meta_codes) == len(values) == len(segments)):
        raise ValueError("columns, meta_codes, values and segments must have one entry per column")
    for codes, vals, segs in zip(meta_codes, values, segments, strict=True):
        c = np.where(found, np.asarray(codes, dtype=np.int64)[row], -1)
        missing = c < 0
        used = np.bincount(c[~missing], minlength=len(vals)) > 0
        keep = np.flatnonzero(used)
        remap = np.full(len(vals) + 1, -1, dtype=np.int64)
        remap[keep] = np.arange(keep.shape[0])
        out_values = [str(vals[int(i)]) for i in keep]
        seg_source = segs if segs is not None else metric_key_segments([str(v) for v in vals])
        out_segments = [str(seg_source[int(i)]) for i in keep]
        if missing.any():
            remap[-1] = keep.shape[0]
            out_values.append(MISSING)
            out_segments.append(metric_key_segments([MISSING])[0])
        all_codes.append(remap[c])
        all_values.append(tuple(out_values))
        all_segments.append(tuple(out_segments))
        n_missing.append(int(missing.sum()))
    matrix = (
        np.column_stack(all_codes) if all_codes else np.zeros((ids.shape[0], 0), dtype=np.int64)
    )
    return SliceAssignment(
        columns=tuple(columns),
        values=tuple(all_values),
        segments=tuple(all_segments),
        codes=matrix.astype(np.int64),
        n_missing=tuple(n_missing),
        n_unmatched=int((~found).sum()),
    )


def group_bounds(codes: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Video order grouped by code (stable) and the start of each group in it.

    Returns:
        ``(order, starts)``: ``order[starts[g]:starts[g + 1]]`` are group g's videos in
        their original order; ``starts`` has ``n_groups + 1`` entries.
    """
    c = np.asarray(codes, dtype=np.int64)
    order = np.argsort(c, kind="stable")
    starts = np.concatenate(([0], np.cumsum(np.bincount(c, minlength=n_groups))))
    return order, starts


# ----------------------------------------------------------------------------- poster


@dataclass(frozen=True, eq=False)
class PosterSliceMetrics:
    """recall@k and MRR@K per slice of one column.

    Attributes:
        n_videos: Eligible videos per slice, shape (g,).
        recall: recall@k, shape (g, K); column k - 1 holds recall@k.
        mrr: MRR@K, shape (g,).
    """

    n_videos: np.ndarray
    recall: np.ndarray
    mrr: np.ndarray


def poster_slice_metrics(
    first_hit_rank: np.ndarray, codes: np.ndarray, n_groups: int, k_max: int
) -> PosterSliceMetrics:
    """recall@1..K and MRR@K per slice, with the definitions of the whole set.

    With r = first-hit rank (0 = miss) and g the slice of a video: ``recall_at_k[g] =
    #{r in [1, k]} / n_g`` and ``mrr[g] = sum(1 / r for r in [1, K]) / n_g``.

    Args:
        first_hit_rank: Per eligible video, shape (n,), int (0 = miss).
        codes: Slice code per video, shape (n,), in [0, n_groups).
        n_groups: Number of slices.
        k_max: K.

    Returns:
        A :class:`PosterSliceMetrics` (NaN for a slice without videos).
    """
    r = np.asarray(first_hit_rank, dtype=np.int64)
    c = np.asarray(codes, dtype=np.int64)
    hit = (r >= 1) & (r <= k_max)
    rank = np.where(hit, r, 0)
    hist = np.bincount(c * (k_max + 1) + rank, minlength=n_groups * (k_max + 1))
    hist = hist.reshape(n_groups, k_max + 1)
    n = hist.sum(axis=1)
    hits_at = np.cumsum(hist[:, 1:], axis=1)
    rr = np.bincount(c, weights=np.where(hit, 1.0 / np.maximum(rank, 1), 0.0), minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return PosterSliceMetrics(n.astype(np.int64), hits_at / n[:, None], rr / n)


def slice_intervals(
    values: np.ndarray,
    codes: np.ndarray,
    n_groups: int,
    *,
    n_resamples: int,
    confidence: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of the mean per slice (videos of the slice resampled).

    Slice g's interval is ``bootstrap_mean_ci(values[codes == g], ...)`` with the videos in
    their given order, so a slice holding every video gets the whole set's interval.

    Returns:
        ``(low, high)``, each shape (n_groups,); NaN for an empty slice.
    """
    v = np.asarray(values, dtype=np.float64)
    order, starts = group_bounds(codes, n_groups)
    low = np.full(n_groups, np.nan)
    high = np.full(n_groups, np.nan)
    for g in range(n_groups):  # one bootstrap per slice, each over its own videos
        rows = order[starts[g] : starts[g + 1]]
        if rows.shape[0]:
            b = bootstrap_mean_ci(
                v[rows], n_resamples=n_resamples, confidence=confidence, seed=seed
            )
            low[g], high[g] = b.low[0], b.high[0]
    return low, high


# ----------------------------------------------------------------------------- episode


@dataclass(frozen=True, eq=False)
class EpisodeSliceMetrics(GroupMetrics):
    """Episode metrics per slice of one column (definitions as for the whole set).

    Attributes:
        n_videos / episode_accuracy / ... / auto_accuracy: per slice, as in `GroupMetrics`.
        coverage_at_accuracy: largest coverage whose auto-decision accuracy is >= the
            target, within the slice (0 when no threshold qualifies).
    """

    coverage_at_accuracy: np.ndarray


def episode_slice_metrics(
    v: Videos, codes: np.ndarray, n_groups: int, *, threshold: float, target: float
) -> EpisodeSliceMetrics:
    """Episode metrics per slice, all slices at once.

    ``coverage_at_accuracy[g]`` runs the whole set's rule inside slice g: the slice's
    videos sorted by confidence, descending, ties entering together; at each distinct
    confidence c, ``n_auto`` and ``n_right`` are the slice's videos with confidence >= c and
    those decided right; the largest ``n_auto / n_g`` with ``n_right / n_auto >= target``.

    Args:
        v: The validated per-video episode values.
        codes: Slice code per video, shape (n,).
        n_groups: Number of slices.
        threshold: The confidence threshold of the automated decisions.
        target: The target auto-decision accuracy.
    """
    c = np.asarray(codes, dtype=np.int64)
    per_slice = group_metrics(v, c, n_groups, threshold)
    # Within each slice, confidence descending; a tie block ends where (slice, conf) changes.
    order = np.lexsort((-v.confidence, c))
    cs, conf = c[order], v.confidence[order]
    right = v.flag_right[order].astype(np.int64)
    ends = np.flatnonzero(np.append((cs[1:] != cs[:-1]) | (conf[1:] != conf[:-1]), True))
    starts = np.concatenate(([0], np.cumsum(np.bincount(c, minlength=n_groups))))[:-1]
    position = np.arange(cs.shape[0])
    cum_right = np.cumsum(right)
    before = np.concatenate(([0], cum_right))[starts[cs[ends]]]
    n_auto_at = position[ends] + 1 - starts[cs[ends]]
    n_right_at = cum_right[ends] - before
    # n_right / n_auto >= target, computed exactly as in the whole-set rule.
    ok = ratio(n_right_at, n_auto_at, -math.inf) >= target
    best = np.zeros(n_groups)
    np.maximum.at(best, cs[ends][ok], n_auto_at[ok].astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return EpisodeSliceMetrics(
            **vars(per_slice), coverage_at_accuracy=best / per_slice.n_videos
        )
