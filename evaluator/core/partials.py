"""Per-video partial results of a poster evaluation, and how they merge into the full result.

An engine cuts the videos into disjoint sets (work units, Spark partitions), scores each set
with the core and keeps only a `PosterPartial`: per video its counts and match results (the
first-hit rank, the pair behind it, the miss reason, what the match table shows), its 128-bit
content digest, the sweep as hit counts, and optionally the frame-by-frame view the report's
gallery shows. Partials of disjoint video sets `merge_partials` into one; `finish` turns the
merged partial into exactly the `PosterResult` a single in-memory evaluation of all videos
gives (same metrics, sweep, match table inputs, bootstrap inputs, digest), because every
per-video number depends on that video's rows only, and everything else is a sum or a mean
taken in the canonical video order (``order_key``).

Pure numpy: no I/O, no pandas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from evaluator.core.calibration import ExpertPool, canonical_pool, merge_pools
from evaluator.core.digest import combine_video_digests
from evaluator.core.matching import (
    MATCH_FLOAT_FIELDS,
    MISS_REASONS,
    FrameMatches,
    VideoMatches,
)
from evaluator.core.poster import (
    PosterResult,
    PosterSettings,
    SweepResult,
    input_counts,
    poster_metrics,
    sweep_hit_counts,
    sweep_recall_from_counts,
)

# Per-video fields of `VideoMatches` a partial carries for every video (0 / NaN where the
# video is not scored).
MATCH_INT_FIELDS = (
    "first_hit_rank",
    "n_matched_model_frames",
    "n_matched_expert_frames",
    "best_model_rank",
    "miss_reason",
)
COUNT_FIELDS = (
    "n_expert_frames",
    "n_expert_duplicates",
    "n_prediction_rows",
    "n_model_frames",
    "n_model_frames_truncated",
)
_PER_VIDEO = ("video_id", "order_key", *COUNT_FIELDS, *MATCH_INT_FIELDS, *MATCH_FLOAT_FIELDS)
_FRAME_MODEL = (
    "model_video",
    "model_row",
    "model_rank",
    "model_timestamp",
    "model_status",
    "model_dt",
    "model_cosine",
    "model_expert_timestamp",
)
_FRAME_EXPERT = ("expert_video", "expert_row", "expert_timestamp", "expert_matched")


@dataclass(frozen=True)
class GalleryFrames:
    """The frame-by-frame view (`FrameMatches`) of some scored videos of a partial.

    Attributes:
        frames: `FrameMatches` whose ``videos``, ``model_video`` and ``expert_video`` are
            positions in the partial's per-video arrays (not video codes); ``model_row`` /
            ``expert_row`` are whatever row ids the engine gave (the row's position in its
            table over all part files for the local engine; -1 when unknown).
        model_image / expert_image: the ``image`` path of each model / expert frame (object
            arrays aligned with the frames), or None when the tables have no image column.
    """

    frames: FrameMatches
    model_image: np.ndarray | None = None
    expert_image: np.ndarray | None = None


@dataclass(frozen=True)
class PosterPartial:
    """Outcomes of a set of videos, all of whose rows were scored together.

    Per-video arrays have one entry per video that appears in either table of the set, in any
    order. Every count is after the core's rules (exact duplicate expert rows dropped, model
    frames of videos without expert frames ignored, at most k_max model frames considered).

    Attributes:
        video_id: str id per video (object array); distinct, and disjoint between partials
            that are merged.
        order_key: int64 canonical position of the video; `finish` orders videos by it (ties
            by id), and means, the bootstrap input and the match table follow that order. The
            local engine uses the position of the video's first row in "all expert rows, then
            all prediction rows" (file order over the part files), which is exactly the order
            of an in-memory evaluation.
        n_expert_frames: kept expert frames (after dropping exact duplicates).
        n_expert_duplicates: exact duplicate expert rows dropped.
        n_prediction_rows: prediction rows of the video (all of them).
        n_model_frames: model frames considered (at most k_max; 0 when no expert frames).
        n_model_frames_truncated: model frames past k_max (videos with expert frames only).
        first_hit_rank ... max_cosine: the `VideoMatches` fields (MATCH_INT_FIELDS,
            MATCH_FLOAT_FIELDS) for eligible videos; 0 / NaN for the others.
        digest: (n, 2) uint64 `evaluator.core.digest.video_digests` of each eligible video's
            kept expert rows (zeros for the others).
        embedding_dim: the vectors' length D, or None when matching is time-only.
        sweep_hits: (n_tau, n_theta, K) int64: eligible videos of the set that hit within k
            frames at (tau, theta) (`evaluator.core.poster.sweep_hit_counts`); None = no sweep.
        gallery: the frame-by-frame view of (some of) the eligible videos, or None.
        pool: the eligible videos' `evaluator.core.calibration.ExpertPool` (codes: positions
            in the per-video arrays), or None when matching is time-only.
    """

    video_id: np.ndarray
    order_key: np.ndarray
    n_expert_frames: np.ndarray
    n_expert_duplicates: np.ndarray
    n_prediction_rows: np.ndarray
    n_model_frames: np.ndarray
    n_model_frames_truncated: np.ndarray
    first_hit_rank: np.ndarray
    n_matched_model_frames: np.ndarray
    n_matched_expert_frames: np.ndarray
    best_model_rank: np.ndarray
    miss_reason: np.ndarray
    best_model_timestamp: np.ndarray
    best_expert_timestamp: np.ndarray
    best_dt: np.ndarray
    best_cosine: np.ndarray
    nearest_dt: np.ndarray
    nearest_cosine: np.ndarray
    min_dt: np.ndarray
    max_cosine: np.ndarray
    digest: np.ndarray
    embedding_dim: int | None
    sweep_hits: np.ndarray | None
    gallery: GalleryFrames | None = None
    pool: ExpertPool | None = None

    def __len__(self) -> int:
        return int(self.video_id.shape[0])


@dataclass(frozen=True)
class FinishedPoster:
    """The merged evaluation: the core result over all videos of the merged partials.

    Attributes:
        result: the `PosterResult`; video codes are positions in ``video_ids`` (the canonical
            order); ``matches.frames`` holds the gallery's videos (codes), when kept.
        video_ids: str id per video code.
        digest: the dataset digest of the eligible expert set
            (`evaluator.core.digest.combine_video_digests`).
        model_image / expert_image: image path per frame of ``result.matches.frames``, or None.
        pool: the expert pool (codes: positions in ``video_ids``; frames grouped by video in
            the canonical order), or None when matching is time-only.
    """

    result: PosterResult
    video_ids: np.ndarray
    digest: str
    model_image: np.ndarray | None = None
    expert_image: np.ndarray | None = None
    pool: ExpertPool | None = None


def partial_from_result(
    result: PosterResult,
    video_ids: np.ndarray,
    order_key: np.ndarray,
    n_prediction_rows: np.ndarray,
    n_expert_duplicates: np.ndarray,
    digest: np.ndarray,
    embedding_dim: int | None,
    *,
    expert_rows: np.ndarray | None = None,
    model_rows: np.ndarray | None = None,
    expert_image: np.ndarray | None = None,
    model_image: np.ndarray | None = None,
    pool: ExpertPool | None = None,
) -> PosterPartial:
    """The partial of one scored set from the core's result on that set.

    Args:
        result: `evaluate_poster` on the set's rows (codes 0 .. n - 1).
        video_ids: str id per code of the set.
        order_key: int64 canonical position per code (see `PosterPartial.order_key`).
        n_prediction_rows: prediction rows per code.
        n_expert_duplicates: exact duplicate expert rows dropped per code.
        digest: (n, 2) uint64 per code (`video_digests` of the eligible kept expert rows).
        embedding_dim: D, or None when time-only.
        expert_rows / model_rows: row id to report for each input row of the set (default:
            its position in the set's table).
        expert_image / model_image: image path per input row of the set, or None.
        pool: the set's expert pool (codes 0 .. n - 1), or None.

    Returns:
        The partial (its gallery is ``result.matches.frames`` when the core judged frames).
    """
    n = result.n_videos
    m = result.matches
    per_video: dict[str, np.ndarray] = {}
    for name in MATCH_INT_FIELDS:
        per_video[name] = np.zeros(n, dtype=np.int64)
        per_video[name][m.videos] = getattr(m, name)
    for name in MATCH_FLOAT_FIELDS:
        per_video[name] = np.full(n, np.nan)
        per_video[name][m.videos] = getattr(m, name)
    sweep_hits = None
    if m.sweep_best is not None:
        thetas = None if result.settings.min_cosine is None else result.settings.sweep_min_cosines
        sweep_hits = sweep_hit_counts(m.sweep_best, thetas)[1]
    gallery = None
    if m.frames is not None:
        f = m.frames
        gallery = GalleryFrames(
            replace(
                f,
                model_row=f.model_row if model_rows is None else model_rows[f.model_row],
                expert_row=f.expert_row if expert_rows is None else expert_rows[f.expert_row],
            ),
            None if model_image is None else model_image[f.model_row],
            None if expert_image is None else expert_image[f.expert_row],
        )
    return PosterPartial(
        video_id=np.asarray(video_ids, dtype=object),
        order_key=np.asarray(order_key, dtype=np.int64),
        n_expert_frames=result.n_expert_frames.astype(np.int64),
        n_expert_duplicates=np.asarray(n_expert_duplicates, dtype=np.int64),
        n_prediction_rows=np.asarray(n_prediction_rows, dtype=np.int64),
        n_model_frames=result.n_model_frames.astype(np.int64),
        n_model_frames_truncated=result.n_model_frames_truncated.astype(np.int64),
        digest=np.asarray(digest, dtype=np.uint64).reshape(n, 2),
        embedding_dim=embedding_dim,
        sweep_hits=sweep_hits,
        gallery=gallery,
        pool=pool,
        **per_video,
    )


def gallery_order(
    first_hit_rank: np.ndarray, miss_reason: np.ndarray, ids: np.ndarray
) -> np.ndarray:
    """The report gallery's display order: misses first (by reason, then id), then hits from
    the latest first hit to the earliest (ties by id).

    Args:
        first_hit_rank: per video (0 = miss).
        miss_reason: code per video (index into MISS_REASONS).
        ids: str id per video.

    Returns:
        Indices that sort the videos into display order.
    """
    reasons = np.asarray(MISS_REASONS, dtype=object)[miss_reason].astype(str)
    return np.lexsort((np.asarray(ids).astype(str), -first_hit_rank, reasons, first_hit_rank > 0))


def _take_frames(g: GalleryFrames, videos: np.ndarray, new_position: np.ndarray) -> GalleryFrames:
    """The frames of ``videos`` (positions), renumbered by ``new_position[old position]``."""
    f = g.frames
    keep_m = np.isin(f.model_video, videos)
    keep_e = np.isin(f.expert_video, videos)
    model = {k: getattr(f, k)[keep_m] for k in _FRAME_MODEL}
    expert = {k: getattr(f, k)[keep_e] for k in _FRAME_EXPERT}
    model["model_video"] = new_position[model["model_video"]]
    expert["expert_video"] = new_position[expert["expert_video"]]
    return GalleryFrames(
        FrameMatches(videos=np.sort(new_position[videos]), **model, **expert),
        None if g.model_image is None else g.model_image[keep_m],
        None if g.expert_image is None else g.expert_image[keep_e],
    )


def cap_gallery(partial: PosterPartial, max_videos: int | None) -> PosterPartial:
    """Keep the gallery frames of the first ``max_videos`` scored videos in `gallery_order`.

    Capping commutes with merging (the first N of a union are among the first N of its
    parts), so engines may cap each partial and again after merging.
    """
    g = partial.gallery
    if g is None or max_videos is None or g.frames.videos.shape[0] <= max_videos:
        return partial
    v = g.frames.videos
    order = gallery_order(partial.first_hit_rank[v], partial.miss_reason[v], partial.video_id[v])
    identity = np.arange(len(partial), dtype=np.int64)
    return replace(partial, gallery=_take_frames(g, v[order[: max(0, max_videos)]], identity))


def prune_galleries(
    partials: Sequence[PosterPartial], max_videos: int | None
) -> list[PosterPartial]:
    """Drop the gallery frames no merge of ``partials`` can show.

    Only the first ``max_videos`` gallery videos of the union (in `gallery_order`) survive
    `merge_partials` with that cap, so every other video's frames can go now: an engine that
    prunes after each unit holds at most ``max_videos`` videos' frames, not the whole
    catalog's, and the merged gallery is the same.
    """
    out = list(partials)
    with_frames = [
        (i, p.gallery, p.gallery.frames.videos)
        for i, p in enumerate(partials)
        if p.gallery is not None and p.gallery.frames.videos.shape[0]
    ]
    n = sum(v.shape[0] for _, _, v in with_frames)
    if max_videos is None or n <= max_videos:
        return out
    order = gallery_order(
        np.concatenate([partials[i].first_hit_rank[v] for i, _, v in with_frames]),
        np.concatenate([partials[i].miss_reason[v] for i, _, v in with_frames]),
        np.concatenate([partials[i].video_id[v] for i, _, v in with_frames]),
    )
    keep = np.zeros(n, dtype=bool)
    keep[order[: max(0, max_videos)]] = True
    start = 0
    for i, gallery, v in with_frames:
        kept = keep[start : start + v.shape[0]]
        start += v.shape[0]
        if not kept.all():
            identity = np.arange(len(out[i]), dtype=np.int64)
            out[i] = replace(out[i], gallery=_take_frames(gallery, v[kept], identity))
    return out


def _cat(parts: Sequence[np.ndarray | None]) -> np.ndarray | None:
    if any(p is None for p in parts):
        return None
    return np.concatenate([p for p in parts if p is not None])


def _merge_galleries(partials: Sequence[PosterPartial]) -> GalleryFrames | None:
    offsets = np.cumsum([0, *[len(p) for p in partials]])
    with_videos = [(p.gallery, off) for p, off in zip(partials, offsets, strict=False) if len(p)]
    if not with_videos or any(g is None for g, _ in with_videos):
        return None
    galleries = [(g, int(off)) for g, off in with_videos if g is not None]
    merged: dict[str, np.ndarray] = {}
    for name in (*_FRAME_MODEL, *_FRAME_EXPERT, "videos"):
        values = [getattr(g.frames, name) for g, _ in galleries]
        if name in ("videos", "model_video", "expert_video"):
            values = [v + off for v, (_, off) in zip(values, galleries, strict=True)]
        merged[name] = np.concatenate(values)
    return GalleryFrames(
        FrameMatches(**merged),
        _cat([g.model_image for g, _ in galleries]),
        _cat([g.expert_image for g, _ in galleries]),
    )


def merge_partials(
    partials: Sequence[PosterPartial], *, max_gallery_videos: int | None = None
) -> PosterPartial:
    """One partial for the union of disjoint video sets.

    Args:
        partials: partials of disjoint video sets (at least one), scored with the same
            settings.
        max_gallery_videos: keep the gallery frames of at most this many videos
            (`cap_gallery`); None keeps all.

    Returns:
        The merged partial: per-video arrays concatenated, sweep counts added.

    Raises:
        ValueError: no partials, different embedding lengths or sweep grids, or a video in
            more than one partial.
    """
    if not partials:
        raise ValueError("merge_partials needs at least one partial")
    if len(partials) == 1:
        return cap_gallery(partials[0], max_gallery_videos)
    dims = {p.embedding_dim for p in partials if len(p)}
    if len(dims) > 1:
        raise ValueError(f"partials have different embedding lengths: {sorted(map(str, dims))}")
    shapes = {None if p.sweep_hits is None else p.sweep_hits.shape for p in partials}
    if len(shapes) > 1:
        raise ValueError("partials were scored with different sweep grids")
    merged = {name: np.concatenate([getattr(p, name) for p in partials]) for name in _PER_VIDEO}
    if np.unique(merged["video_id"].astype(str)).shape[0] != merged["video_id"].shape[0]:
        raise ValueError("a video appears in more than one partial: video sets must be disjoint")
    hits = None
    counts = [p.sweep_hits for p in partials if p.sweep_hits is not None]
    if counts:
        hits = np.add.reduce(counts, dtype=np.int64)
    pool = merge_pools([p.pool for p in partials], [len(p) for p in partials])
    out = PosterPartial(
        digest=np.concatenate([p.digest for p in partials]),
        embedding_dim=dims.pop() if dims else partials[0].embedding_dim,
        sweep_hits=hits,
        gallery=_merge_galleries(partials),
        pool=pool,
        **merged,
    )
    return cap_gallery(out, max_gallery_videos)


def finish(partial: PosterPartial, settings: PosterSettings) -> FinishedPoster:
    """The full result of the videos of ``partial`` (normally a merge of all of them).

    Videos are put in the canonical order (``order_key``, then id); the metrics are those of
    `evaluator.core.poster.evaluate_poster` (`poster_metrics`, means summed in that order), the
    sweep is hits / eligible videos, and the digest is combined over the eligible videos.

    Args:
        partial: the partial of every video of the evaluation.
        settings: the settings the partials were scored with.

    Returns:
        The finished evaluation.
    """
    ids = partial.video_id.astype(str)
    order = np.lexsort((ids, partial.order_key))
    n = len(partial)
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)

    def sorted_(name: str) -> np.ndarray:
        return np.asarray(getattr(partial, name))[order]

    n_expert = sorted_("n_expert_frames")
    n_model = sorted_("n_model_frames")
    eligible = n_expert >= settings.min_expert_frames
    has_experts = n_expert > 0
    videos = np.flatnonzero(eligible)

    frames = None
    model_image = expert_image = None
    if partial.gallery is not None:
        g = _take_frames(partial.gallery, partial.gallery.frames.videos, position)
        # Back to the core's layout: grouped by scored video in code order, then rank / time.
        f = g.frames
        m_order = np.lexsort((f.model_rank, f.model_video))
        e_order = np.lexsort((f.expert_timestamp, f.expert_video))
        frames = FrameMatches(
            videos=f.videos,
            **{k: getattr(f, k)[m_order] for k in _FRAME_MODEL},
            **{k: getattr(f, k)[e_order] for k in _FRAME_EXPERT},
        )
        model_image = None if g.model_image is None else g.model_image[m_order]
        expert_image = None if g.expert_image is None else g.expert_image[e_order]

    matches = VideoMatches(
        videos=videos,
        sweep_best=None,
        frames=frames,
        **{name: sorted_(name)[videos] for name in (*MATCH_INT_FIELDS, *MATCH_FLOAT_FIELDS)},
    )
    counts = input_counts(
        has_experts,
        eligible,
        sorted_("n_prediction_rows") > 0,
        partial.n_model_frames_truncated,
        partial.n_expert_duplicates,
    )
    metrics, curve = poster_metrics(settings, matches, n_expert[videos], n_model[videos], counts)
    sweep = None
    if partial.sweep_hits is not None:
        thetas = (
            np.array([np.nan])
            if settings.min_cosine is None
            else np.asarray(settings.sweep_min_cosines, dtype=np.float64)
        )
        sweep = SweepResult(
            np.asarray(settings.sweep_time_tolerances_s, dtype=np.float64),
            thetas,
            sweep_recall_from_counts(partial.sweep_hits, videos.shape[0]),
        )
    result = PosterResult(
        settings=settings,
        metrics=metrics,
        recall_curve=curve,
        n_videos=n,
        eligible=eligible,
        n_expert_frames=n_expert,
        n_model_frames=n_model,
        n_model_frames_truncated=sorted_("n_model_frames_truncated"),
        matches=matches,
        sweep=sweep,
    )
    digest = combine_video_digests(
        partial.video_id[order][videos], partial.digest[order][videos], partial.embedding_dim
    )
    pool = canonical_pool(partial.pool, position)
    return FinishedPoster(result, partial.video_id[order], digest, model_image, expert_image, pool)


def empty_partial(settings: PosterSettings, embedding_dim: int | None) -> PosterPartial:
    """A partial of no videos (the neutral element of `merge_partials`)."""
    zero_i = np.zeros(0, dtype=np.int64)
    zero_f = np.zeros(0, dtype=np.float64)
    hits = None
    if settings.sweep_time_tolerances_s:
        n_theta = 1 if settings.min_cosine is None else len(settings.sweep_min_cosines)
        hits = np.zeros((len(settings.sweep_time_tolerances_s), n_theta, settings.k_max), np.int64)
    values: dict[str, np.ndarray] = {name: zero_i for name in (*COUNT_FIELDS, *MATCH_INT_FIELDS)}
    values.update({name: zero_f for name in MATCH_FLOAT_FIELDS})
    return PosterPartial(
        video_id=np.zeros(0, dtype=object),
        order_key=zero_i,
        digest=np.zeros((0, 2), dtype=np.uint64),
        embedding_dim=embedding_dim,
        sweep_hits=hits,
        gallery=None,
        pool=None,
        **values,
    )
