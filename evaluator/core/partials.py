"""How the partial results of disjoint video sets merge into the full result of a poster evaluation.

An engine cuts the videos into disjoint sets (work units, Spark partitions), scores each set
with `evaluator.core.poster.score_set` and keeps only its `PosterPartial`: per video its
`VideoOutcomes` entry (counts, match results, 128-bit content digest), the sweep as hit counts
and the expert pool. Partials of disjoint video sets `merge_partials` into one; `finish` turns
the merged partial into exactly the `PosterResult` a single in-memory evaluation of all videos
gives (same metrics, sweep, match table inputs, bootstrap inputs, digest), because every
per-video number depends on that video's rows only, and everything else is a sum or a mean
taken in the canonical video order (``order_key``).

Pure numpy: no I/O, no pandas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evaluator.core.calibration import ExpertPool, canonical_pool, merge_pools
from evaluator.core.digest import combine_video_digests
from evaluator.core.poster import (
    PosterPartial,
    PosterResult,
    PosterSettings,
    VideoOutcomes,
    poster_result,
)


@dataclass(frozen=True)
class FinishedPoster:
    """The merged evaluation: the core result over all videos of the merged partials.

    Attributes:
        result: the `PosterResult`; video codes are positions in ``video_ids`` (the canonical
            order).
        video_ids: str id per video code.
        digest: the dataset digest of the eligible expert set
            (`evaluator.core.digest.combine_video_digests`).
        pool: the expert pool (codes: positions in ``video_ids``; frames grouped by video in
            the canonical order), or None when matching is time-only.
    """

    result: PosterResult
    video_ids: np.ndarray
    digest: str
    pool: ExpertPool | None = None


def merge_partials(partials: Sequence[PosterPartial]) -> PosterPartial:
    """One partial for the union of disjoint video sets.

    Args:
        partials: partials of disjoint video sets (at least one), scored with the same
            settings.

    Returns:
        The merged partial: per-video outcomes concatenated, sweep counts added.

    Raises:
        ValueError: no partials, different embedding lengths or sweep grids, or a video in
            more than one partial.
    """
    if not partials:
        raise ValueError("merge_partials needs at least one partial")
    if len(partials) == 1:
        return partials[0]
    dims = {p.embedding_dim for p in partials if len(p)}
    if len(dims) > 1:
        raise ValueError(f"partials have different embedding lengths: {sorted(map(str, dims))}")
    shapes = {None if p.sweep_hits is None else p.sweep_hits.shape for p in partials}
    if len(shapes) > 1:
        raise ValueError("partials were scored with different sweep grids")
    videos = VideoOutcomes.concat([p.videos for p in partials])
    if np.unique(videos.video_id.astype(str)).shape[0] != len(videos):
        raise ValueError("a video appears in more than one partial: video sets must be disjoint")
    hits = None
    counts = [p.sweep_hits for p in partials if p.sweep_hits is not None]
    if counts:
        hits = np.add.reduce(counts, dtype=np.int64)
    return PosterPartial(
        videos=videos,
        embedding_dim=dims.pop() if dims else partials[0].embedding_dim,
        sweep_hits=hits,
        pool=merge_pools([p.pool for p in partials], [len(p) for p in partials]),
    )


def canonical_order(videos: VideoOutcomes) -> np.ndarray:
    """Indices that put videos in the canonical order: by ``order_key``, ties by id."""
    return np.lexsort((videos.video_id.astype(str), videos.order_key))


def finish(
    partial: PosterPartial, settings: PosterSettings, order: np.ndarray | None = None
) -> FinishedPoster:
    """The full result of the videos of ``partial`` (normally a merge of all of them).

    Videos are put in the canonical order (`canonical_order`); the metrics and the sweep are
    those of `evaluator.core.poster.poster_result` (means summed in that order), and the
    digest is combined over the eligible videos.

    Args:
        partial: the partial of every video of the evaluation.
        settings: the settings the partials were scored with.
        order: `canonical_order` of ``partial.videos``, when already known.

    Returns:
        The finished evaluation.
    """
    if order is None:
        order = canonical_order(partial.videos)
    position = np.empty(len(partial), dtype=np.int64)
    position[order] = np.arange(len(partial))
    videos = partial.videos.take(order)
    result = poster_result(videos, partial.sweep_hits, settings)
    scored = result.matches.videos
    digest = combine_video_digests(
        videos.video_id[scored], videos.digest[scored], partial.embedding_dim
    )
    pool = canonical_pool(partial.pool, position)
    return FinishedPoster(result, videos.video_id, digest, pool)


def empty_partial(settings: PosterSettings, embedding_dim: int | None) -> PosterPartial:
    """A partial of no videos (the neutral element of `merge_partials`)."""
    hits = None
    if settings.sweep_time_tolerances_s:
        n_theta = 1 if settings.min_cosine is None else len(settings.sweep_min_cosines)
        hits = np.zeros((len(settings.sweep_time_tolerances_s), n_theta, settings.k_max), np.int64)
    return PosterPartial(VideoOutcomes.blank(0), embedding_dim, hits)
