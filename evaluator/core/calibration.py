"""Does ``matching.min_cosine`` separate unrelated frames? Centring and the calibration figures.

Pooled features of ImageNet classifiers are non-negative, so their cosines run high for any two
frames: a ``min_cosine`` of 0.5 may then pass almost every pair and filter nothing. Two tools:

- Centring (``matching.center=experts``): the mean vector of the *expert pool* is subtracted
  from every vector (expert and model, computed or precomputed) before the cosine, so the
  cosine measures how two frames differ from a typical frame of the set. The mean depends on
  the expert set only, so every model evaluated on it is matched with the same vectors.
- Calibration: the share of *unrelated* pairs whose cosine reaches ``min_cosine``. Unrelated
  pairs are the unordered pairs of pool frames from two different videos: all of them while
  there are at most ``max_pairs``, else a uniform sample (without replacement) of ``max_pairs``
  drawn with ``seed``.

The expert pool: the expert frames of the eligible videos after exact duplicates are dropped
(the frames the evaluation scores) that hold a vector. A zero vector stands for "no vector" (it
matches nothing), and so does a frame without one (NaN: not embedded); both are left out of the
mean and of the pairs, and a zero vector stays zero after centring. A frame whose centred
vector is zero (it equals the mean) has no cosine either and is left out of the pairs.

Cosines use the match rule's formula (`evaluator.core.matching`): float64
``dot(a, b) / sqrt(dot(a, a) * dot(b, b))``, clipped to [-1, 1]. The dot products come from a
matrix product (all pairs) or a chunked gather (a sample), so a pair's last bit may differ from
the match rule's; on small integer entries every dot product is exact either way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evaluator.core.frames import Frames, exact_duplicate_mask

# Histogram bins of the calibration plot: [-1, 1] in steps of 0.01 (np.histogram: the last
# bin is closed, so a cosine of exactly 1 is counted).
COSINE_BINS = np.linspace(-1.0, 1.0, 201)
# Elements (pairs x D) gathered per chunk when the pairs' cosines are computed: 2**22 float64
# values are 32 MB per side.
_CHUNK_ELEMENTS = 1 << 22
# Rows per matrix product when every pair is computed.
_BLOCK_ROWS = 512


@dataclass(frozen=True)
class ExpertPool:
    """The expert pool of a set of videos, and the cosines of its time-candidate pairs.

    Attributes:
        video: int64 video code per pool frame (whatever codes the owner uses); frames of a
            video keep their input order.
        vectors: (m, D) the frames' vectors as read (not centred).
        candidate_counts: int64 histogram over `COSINE_BINS` of the cosines (as matched) of the
            time-candidate pairs: (model frame, expert frame) of an eligible video, model frame
            within ``k_max``, ``|dt| <= time_tolerance_s``, both vectors non-zero.
    """

    video: np.ndarray
    vectors: np.ndarray
    candidate_counts: np.ndarray


@dataclass(frozen=True)
class VectorSums:
    """Per-video sums of the pool's vectors (the mergeable form of the mean).

    Attributes:
        video_id: str id per video with pool frames (object array).
        sums: (n, D) float64 sum of the video's pool vectors (in input order).
        counts: int64 pool frames per video.
    """

    video_id: np.ndarray
    sums: np.ndarray
    counts: np.ndarray


@dataclass(frozen=True)
class Calibration:
    """How unrelated pairs fare against ``min_cosine`` (the vectors as matched).

    Attributes:
        min_cosine: the threshold.
        n_frames: pool frames that took part (those holding a vector as matched).
        n_pairs_total: unrelated pairs in the pool.
        n_pairs: pairs whose cosines were computed (all, or the sample).
        sampled: True when ``n_pairs < n_pairs_total``.
        false_match_rate: share of those pairs with cosine >= min_cosine (NaN when none).
        q99: ``numpy.quantile(cosines, 0.99)`` (linear interpolation; NaN when none).
        median: ``numpy.quantile(cosines, 0.5)`` (NaN when none).
        unrelated_counts: int64 histogram of the pairs' cosines over `COSINE_BINS`.
        candidate_counts: int64 histogram of the time-candidate pairs' cosines.
    """

    min_cosine: float
    n_frames: int
    n_pairs_total: int
    n_pairs: int
    sampled: bool
    false_match_rate: float
    q99: float
    median: float
    unrelated_counts: np.ndarray
    candidate_counts: np.ndarray

    def warns(self, warn_rate: float) -> bool:
        """True when the false match rate exceeds ``warn_rate`` (equal to it: no warning)."""
        return bool(np.isfinite(self.false_match_rate) and self.false_match_rate > warn_rate)


def vector_rows(vectors: np.ndarray) -> np.ndarray:
    """Bool per row: the row holds a vector (a non-zero element, every element finite).

    A zero row stands for "no vector"; so does a row with NaN or infinity (a frame an engine
    did not embed), which has no cosine either.
    """
    finite = np.isfinite(vectors).all(axis=1)
    return np.asarray(finite & np.any(vectors != 0, axis=1))


def pool_mask(experts: Frames, n_videos: int, min_expert_frames: int) -> np.ndarray:
    """Bool per expert row: in the expert pool (see the module docstring).

    Eligibility counts every kept row (zero vectors included), as `evaluate_poster` does.

    Args:
        experts: the expert frames with their vectors (all rows of their videos).
        n_videos: number of video codes.
        min_expert_frames: the eligibility threshold.
    """
    if experts.embedding is None:
        raise ValueError("the expert pool needs vectors")
    keep = ~exact_duplicate_mask(experts)
    kept = np.bincount(experts.video[keep], minlength=n_videos)
    eligible = kept >= min_expert_frames
    return keep & eligible[experts.video] & vector_rows(experts.embedding)


def vector_sums(video: np.ndarray, vectors: np.ndarray, video_ids: np.ndarray) -> VectorSums:
    """Per-video float64 sums of pool vectors (rows in input order).

    Args:
        video: int64 code per pool frame (indexes ``video_ids``).
        vectors: (m, D) the pool vectors.
        video_ids: str id per code.
    """
    codes, inverse = np.unique(video, return_inverse=True)
    sums = np.zeros((codes.shape[0], vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse, vectors.astype(np.float64))
    counts = np.bincount(inverse, minlength=codes.shape[0]).astype(np.int64)
    return VectorSums(np.asarray(video_ids, dtype=object)[codes], sums, counts)


def pool_sums(experts: Frames, video_ids: np.ndarray, min_expert_frames: int) -> VectorSums:
    """Per-video sums of the expert pool of ``experts`` (all rows of their videos).

    Args:
        experts: the expert frames with vectors; codes index ``video_ids``.
        video_ids: str id per code.
        min_expert_frames: the eligibility threshold.
    """
    assert experts.embedding is not None
    mask = pool_mask(experts, int(video_ids.shape[0]), min_expert_frames)
    return vector_sums(experts.video[mask], experts.embedding[mask], video_ids)


def expert_mean(parts: Sequence[VectorSums], dim: int) -> np.ndarray:
    """The mean pool vector from per-video sums of disjoint video sets.

    The videos' sums are added in the order of their ids, so the mean is the same to the last
    bit however the videos were split into parts.

    Args:
        parts: per-video sums (disjoint videos).
        dim: the vectors' length D.

    Returns:
        (D,) float64 mean; zeros when the pool is empty (centring then changes nothing).
    """
    parts = [p for p in parts if p.video_id.shape[0]]
    if not parts:
        return np.zeros(dim, dtype=np.float64)
    ids = np.concatenate([p.video_id for p in parts])
    dim = parts[0].sums.shape[1]
    sums = np.concatenate([p.sums for p in parts])
    counts = np.concatenate([p.counts for p in parts])
    order = np.argsort(ids.astype(str), kind="stable")
    total = np.zeros(dim, dtype=np.float64)
    for row in sums[order]:
        total += row
    return total / float(counts.sum())


def centred(vectors: np.ndarray, center: np.ndarray) -> np.ndarray:
    """``vectors - center`` in float64; zero vectors stay zero (they match nothing).

    Example:
        >>> centred(np.array([[1.0, 2.0], [0.0, 0.0]]), np.array([0.5, 0.5])).tolist()
        [[0.5, 1.5], [0.0, 0.0]]
    """
    out = vectors.astype(np.float64) - center[None, :]
    out[~vector_rows(vectors)] = 0.0
    return out


def center_digest(digest: str, center: str) -> str:
    """The dataset digest with the centring folded in (unchanged when ``center == "off"``)."""
    if center == "off":
        return digest
    return hashlib.sha256(f"{digest}\x00center={center}".encode()).hexdigest()


def unrelated_pair_count(video: np.ndarray) -> int:
    """Unordered pairs of frames from two different videos: (N^2 - sum_v n_v^2) / 2."""
    counts = np.unique(video, return_counts=True)[1].astype(object)
    n = int(counts.sum())
    return (n * n - int(sum(c * c for c in counts))) // 2


def unrelated_pairs(
    video: np.ndarray, max_pairs: int, seed: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """The unrelated pairs to compute: all of them, or a uniform sample of ``max_pairs``.

    Frames must be grouped by video (each video's frames contiguous). The pairs are numbered
    0 .. total - 1 in the order (i, j) with i < j, by i then j; the sample is
    ``numpy.random.default_rng(seed).choice(total, max_pairs, replace=False)``, sorted.

    Args:
        video: code per frame, grouped.
        max_pairs: the most pairs computed.
        seed: the sampling seed.

    Returns:
        (i, j, total): frame indices of the pairs (i < j, different videos), and the number of
        unrelated pairs.
    """
    n = video.shape[0]
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), 0
    starts = np.flatnonzero(np.r_[True, video[1:] != video[:-1]])
    ends = np.r_[starts[1:], n]
    end = np.repeat(ends, np.diff(np.r_[starts, n])).astype(np.int64)
    partners = n - end
    offsets = np.concatenate([[0], np.cumsum(partners)[:-1]]).astype(np.int64)[:n]
    total = int(partners.sum())
    if total <= max_pairs:
        index = np.arange(total, dtype=np.int64)
    else:
        rng = np.random.default_rng(seed)
        index = np.sort(rng.choice(total, size=max_pairs, replace=False)).astype(np.int64)
    i = np.searchsorted(offsets, index, side="right") - 1
    j = end[i] + (index - offsets[i])
    return i.astype(np.int64), j.astype(np.int64), total


def pair_cosines(vectors: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Cosines of the pairs (i, j): float64 ``dot / sqrt(|a|^2 |b|^2)``, in chunks.

    float32 vectors are gathered as float32 and multiplied in float64 (exact products, half the
    memory traffic of a float64 copy).
    """
    v = vectors if vectors.dtype in (np.float32, np.float64) else vectors.astype(np.float64)
    norms = np.einsum("nd,nd->n", v, v, dtype=np.float64)
    out = np.empty(i.shape[0], dtype=np.float64)
    step = max(1, _CHUNK_ELEMENTS // max(1, v.shape[1]))
    for lo in range(0, i.shape[0], step):
        a, b = i[lo : lo + step], j[lo : lo + step]
        dots = np.einsum("nd,nd->n", v[a], v[b], dtype=np.float64)
        out[lo : lo + step] = dots / np.sqrt(norms[a] * norms[b])
    return np.clip(out, -1.0, 1.0)


def all_pair_cosines(vectors: np.ndarray, video: np.ndarray) -> np.ndarray:
    """Cosines of every unrelated pair, in the order of `unrelated_pairs` (all of them).

    Frames are taken in blocks of about `_BLOCK_ROWS` rows (frames grouped by video): one
    matrix product of the block against every frame from the block's start on, of which each
    row keeps the frames after its own video.
    """
    v = vectors.astype(np.float64)
    n = v.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    norms = np.einsum("nd,nd->n", v, v)
    starts = np.flatnonzero(np.r_[True, video[1:] != video[:-1]])
    end = np.repeat(np.r_[starts[1:], n], np.diff(np.r_[starts, n])).astype(np.int64)
    parts = []
    lo = 0
    while lo < n and end[lo] < n:
        hi = min(n, lo + _BLOCK_ROWS)
        dots = v[lo:hi] @ v[lo:].T
        cos = dots / np.sqrt(norms[lo:hi, None] * norms[None, lo:])
        keep = np.arange(lo, n)[None, :] >= end[lo:hi, None]
        parts.append(cos[keep])  # row-major: by i, then j
        lo = hi
    out = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float64)
    return np.clip(out, -1.0, 1.0)


def calibrate(
    pool: ExpertPool,
    *,
    min_cosine: float,
    center: np.ndarray | None,
    max_pairs: int,
    seed: int,
) -> Calibration:
    """The calibration figures of the pool's unrelated pairs (see the module docstring).

    false_match_rate = |{pairs: cosine >= min_cosine}| / |pairs|, over all unrelated pairs or
    the sample.

    Args:
        pool: the expert pool of every eligible video, frames grouped by video in a canonical
            order (`evaluator.core.partials.finish` gives it so).
        min_cosine: the threshold.
        center: the mean subtracted before the cosine, or None (``matching.center=off``).
        max_pairs: the most pairs computed (>= 1).
        seed: the sampling seed.

    Returns:
        The figures.
    """
    vectors = pool.vectors if center is None else centred(pool.vectors, center)
    usable = vector_rows(vectors)
    video = pool.video[usable]
    vectors = vectors[usable]
    order = np.argsort(video, kind="stable")
    video, vectors = video[order], vectors[order]
    total = unrelated_pair_count(video)
    if total <= max_pairs:
        cos = all_pair_cosines(vectors, video)
    else:
        i, j, total = unrelated_pairs(video, max_pairs, seed)
        cos = pair_cosines(vectors, i, j)
    nan = float("nan")
    return Calibration(
        min_cosine=float(min_cosine),
        n_frames=int(video.shape[0]),
        n_pairs_total=total,
        n_pairs=int(cos.shape[0]),
        sampled=cos.shape[0] < total,
        false_match_rate=int((cos >= min_cosine).sum()) / cos.size if cos.size else nan,
        q99=float(np.quantile(cos, 0.99)) if cos.size else nan,
        median=float(np.quantile(cos, 0.5)) if cos.size else nan,
        unrelated_counts=np.histogram(cos, COSINE_BINS)[0].astype(np.int64),
        candidate_counts=np.asarray(pool.candidate_counts, dtype=np.int64),
    )


def candidate_histogram(cosines: np.ndarray) -> np.ndarray:
    """int64 counts over `COSINE_BINS` of the finite values of ``cosines``."""
    values = cosines[np.isfinite(cosines)]
    return np.histogram(values, COSINE_BINS)[0].astype(np.int64)


def merge_pools(pools: Sequence[ExpertPool | None], sizes: Sequence[int]) -> ExpertPool | None:
    """One pool of disjoint video sets (None when any is None); the codes of pool k are
    shifted by the sizes of the sets before it."""
    if any(p is None for p in pools):
        return None
    offsets = np.cumsum([0, *sizes[:-1]]).tolist()
    kept = [p for p in pools if p is not None]
    return ExpertPool(
        np.concatenate([p.video + o for p, o in zip(kept, offsets, strict=True)]),
        np.concatenate([p.vectors for p in kept]),
        np.add.reduce([p.candidate_counts for p in kept], dtype=np.int64),
    )


def canonical_pool(pool: ExpertPool | None, position: np.ndarray) -> ExpertPool | None:
    """The pool with codes renumbered by ``position[code]`` and its frames grouped by the new
    codes (input order within a video)."""
    if pool is None:
        return None
    codes = position[pool.video]
    order = np.argsort(codes, kind="stable")
    return ExpertPool(codes[order], pool.vectors[order], pool.candidate_counts)
