"""The report's gallery: which frames it shows, how each model frame fared, in which order.

The gallery judges every considered model frame of the scored videos on its own, from the
pairs the match rule has already tested (`evaluator.core.matching.PairBlock`, handed over by
`evaluator.core.poster.score_set` through ``on_block``): no second pass over the pairs, and
no number of the evaluation depends on it.

Engines keep a unit's frames beside its partial (`ScoredSet`). Only the first
``report.max_gallery_videos`` videos in display order (`gallery_order`) are shown, so the
frames of every other video can be dropped as soon as they are known not to be among them
(`prune_galleries`, `cap_gallery`): capping commutes with merging, and the merged gallery is
the same whatever the units were.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np

from evaluator.core.matching import MISS_REASONS, PairBlock
from evaluator.core.partials import merge_partials
from evaluator.core.poster import PosterPartial

# How one model frame fared; the code is the index.
FRAME_STATUSES = ("hit", "near_time", "near_similarity", "far")
FRAME_HIT, FRAME_NEAR_TIME, FRAME_NEAR_SIMILARITY, FRAME_FAR = range(4)


@dataclass(frozen=True)
class FrameMatches:
    """The match rule frame by frame, for the scored videos (the report's gallery).

    Model arrays have one entry per considered model frame (at most k_max per video), expert
    arrays one per kept expert frame; both ordered by scored video (as in ``videos``), then by
    rank / timestamp.

    Attributes:
        videos: codes of the scored videos.
        model_video / expert_video: the video code of each frame.
        model_row / expert_row: the frame's row in the input table.
        model_rank: 1-based rank.
        model_timestamp / expert_timestamp: seconds.
        model_status: index into FRAME_STATUSES: ``hit`` (matches some expert frame);
            ``near_time`` (some expert frame is close enough in time, none of those similar
            enough); ``near_similarity`` (some is similar enough, none of those close enough);
            ``far`` (neither).
        model_dt / model_cosine: |dt| and cosine of the frame's pair: for a hit the most
            similar matching expert frame; for near_time the most similar within the
            tolerance; for near_similarity the closest similar-enough one; for far the most
            similar overall (time-only: the closest). Cosine is NaN when time-only or a
            vector is zero.
        model_expert_timestamp: the timestamp of that expert frame.
        expert_matched: whether some considered model frame matches the expert frame.
    """

    videos: np.ndarray
    model_video: np.ndarray
    model_row: np.ndarray
    model_rank: np.ndarray
    model_timestamp: np.ndarray
    model_status: np.ndarray
    model_dt: np.ndarray
    model_cosine: np.ndarray
    model_expert_timestamp: np.ndarray
    expert_video: np.ndarray
    expert_row: np.ndarray
    expert_timestamp: np.ndarray
    expert_matched: np.ndarray


_MODEL = tuple(f.name for f in fields(FrameMatches) if f.name.startswith("model_"))
_EXPERT = tuple(f.name for f in fields(FrameMatches) if f.name.startswith("expert_"))


@dataclass(frozen=True)
class FrameSources:
    """What the gallery reports for each input row of a scored set.

    Attributes:
        expert_rows / model_rows: the row id of each input row (None: its position in the
            set's table).
        expert_image / model_image: the image path of each input row, or None.
    """

    expert_rows: np.ndarray | None = None
    model_rows: np.ndarray | None = None
    expert_image: np.ndarray | None = None
    model_image: np.ndarray | None = None


class FrameJudge:
    """Judges every model frame block by block (`add` is ``score_set``'s ``on_block``)."""

    def __init__(self, sources: FrameSources | None = None) -> None:
        self.sources = FrameSources() if sources is None else sources
        self.m_parts: dict[str, list[np.ndarray]] = {
            k: [] for k in ("pos", "video", "row", "rank", "ts", "status", "dt", "cos", "ets")
        }
        self.e_parts: dict[str, list[np.ndarray]] = {
            k: [] for k in ("pos", "video", "row", "ts", "hit")
        }

    def add(self, block: PairBlock) -> None:
        """Judge every model frame of one block (same pairs, same rule as the video view)."""
        valid, dt, time_ok, sim_ok = block.valid, block.dt, block.time_ok, block.sim_ok
        cos_key, match = block.cos_key, block.match
        hit = np.asarray(match.any(axis=2))
        near_time = ~hit & np.asarray(time_ok.any(axis=2))
        near_sim = ~hit & ~near_time & np.asarray(sim_ok.any(axis=2))
        status = np.select(
            [hit, near_time, near_sim],
            [FRAME_HIT, FRAME_NEAR_TIME, FRAME_NEAR_SIMILARITY],
            default=FRAME_FAR,
        )
        # The pair shown for each frame: the set it is judged on, then most similar (closest
        # in time on ties); near_similarity: closest in time (most similar on ties).
        pair_set = np.where(
            hit[:, :, None],
            match,
            np.where(near_time[:, :, None], time_ok, np.where(near_sim[:, :, None], sim_ok, valid)),
        )
        by_cos = np.where(pair_set, cos_key, -np.inf)
        best_cos = by_cos.max(axis=2, initial=-np.inf)
        # Scored videos have >= 1 expert frame, so the expert axis is never empty.
        idx_cos = np.argmin(np.where(pair_set & (by_cos == best_cos[:, :, None]), dt, np.inf), 2)
        by_dt = np.where(pair_set, dt, np.inf)
        best_dt = by_dt.min(axis=2, initial=np.inf)
        idx_dt = np.argmax(np.where(pair_set & (by_dt == best_dt[:, :, None]), cos_key, -np.inf), 2)
        idx = np.where(near_sim, idx_dt, idx_cos)
        pick_dt = np.take_along_axis(dt, idx[:, :, None], axis=2)[:, :, 0]
        if block.cosine is None:
            pick_cos = np.full(pick_dt.shape, np.nan)
        else:
            pick_cos = np.take_along_axis(block.cosine, idx[:, :, None], axis=2)[:, :, 0]
        pick_ets = np.take_along_axis(block.expert_ts, idx, axis=1)

        mv = block.model_valid
        slot = np.broadcast_to(np.arange(mv.shape[1])[None, :], mv.shape)
        for name, values in (
            ("pos", np.broadcast_to(block.rows[:, None], mv.shape)),
            ("video", np.broadcast_to(block.videos[:, None], mv.shape)),
            ("row", block.model_row),
            ("rank", slot + 1),
            ("ts", block.model_ts),
            ("status", status),
            ("dt", pick_dt),
            ("cos", pick_cos),
            ("ets", pick_ets),
        ):
            self.m_parts[name].append(values[mv])
        ev = block.expert_valid
        for name, values in (
            ("pos", np.broadcast_to(block.rows[:, None], ev.shape)),
            ("video", np.broadcast_to(block.videos[:, None], ev.shape)),
            ("row", block.expert_row),
            ("ts", block.expert_ts),
            ("hit", np.asarray(match.any(axis=1))),
        ):
            self.e_parts[name].append(values[ev])

    def result(self, videos: np.ndarray) -> FrameMatches:
        """The collected frames of the scored ``videos`` (codes, in scored order), ordered by
        scored video, then rank / timestamp."""
        m_parts, e_parts = self.m_parts, self.e_parts

        def cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

        m_order = np.lexsort((cat(m_parts["rank"], np.int64), cat(m_parts["pos"], np.int64)))
        e_order = np.lexsort((cat(e_parts["ts"], np.float64), cat(e_parts["pos"], np.int64)))
        return FrameMatches(
            videos=videos,
            model_video=cat(m_parts["video"], np.int64)[m_order],
            model_row=cat(m_parts["row"], np.int64)[m_order],
            model_rank=cat(m_parts["rank"], np.int64)[m_order],
            model_timestamp=cat(m_parts["ts"], np.float64)[m_order],
            model_status=cat(m_parts["status"], np.int64)[m_order],
            model_dt=cat(m_parts["dt"], np.float64)[m_order],
            model_cosine=cat(m_parts["cos"], np.float64)[m_order],
            model_expert_timestamp=cat(m_parts["ets"], np.float64)[m_order],
            expert_video=cat(e_parts["video"], np.int64)[e_order],
            expert_row=cat(e_parts["row"], np.int64)[e_order],
            expert_timestamp=cat(e_parts["ts"], np.float64)[e_order],
            expert_matched=cat(e_parts["hit"], bool)[e_order],
        )

    def gallery(self, scored_videos: np.ndarray) -> GalleryFrames:
        """The set's gallery: `result` with the row ids and images of `FrameSources`."""
        f, src = self.result(scored_videos), self.sources
        return GalleryFrames(
            replace(
                f,
                model_row=f.model_row if src.model_rows is None else src.model_rows[f.model_row],
                expert_row=(
                    f.expert_row if src.expert_rows is None else src.expert_rows[f.expert_row]
                ),
            ),
            None if src.model_image is None else src.model_image[f.model_row],
            None if src.expert_image is None else src.expert_image[f.expert_row],
        )


@dataclass(frozen=True)
class GalleryFrames:
    """The frame-by-frame view of some scored videos, with each frame's image.

    Attributes:
        frames: `FrameMatches` whose ``videos``, ``model_video`` and ``expert_video`` are
            positions in a partial's per-video outcomes (in a finished evaluation: video
            codes, in the canonical order); ``model_row`` / ``expert_row`` are whatever row
            ids the engine gave (the row's position in its table over all part files for the
            local engine; -1 when unknown).
        model_image / expert_image: the ``image`` path of each model / expert frame (object
            arrays aligned with the frames), or None when the tables have no image column.
    """

    frames: FrameMatches
    model_image: np.ndarray | None = None
    expert_image: np.ndarray | None = None


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


def _take_frames(
    g: GalleryFrames, videos: np.ndarray, new_position: np.ndarray | None = None
) -> GalleryFrames:
    """The frames of ``videos`` (positions), renumbered by ``new_position[old position]``."""
    f = g.frames
    keep_m = np.isin(f.model_video, videos)
    keep_e = np.isin(f.expert_video, videos)
    model = {k: getattr(f, k)[keep_m] for k in _MODEL}
    expert = {k: getattr(f, k)[keep_e] for k in _EXPERT}
    if new_position is not None:
        model["model_video"] = new_position[model["model_video"]]
        expert["expert_video"] = new_position[expert["expert_video"]]
        videos = new_position[videos]
    return GalleryFrames(
        FrameMatches(videos=np.sort(videos), **model, **expert),
        None if g.model_image is None else g.model_image[keep_m],
        None if g.expert_image is None else g.expert_image[keep_e],
    )


@dataclass(frozen=True)
class ScoredSet:
    """A set's partial and the gallery frames of (some of) its scored videos.

    Attributes:
        partial: the set's `PosterPartial`.
        gallery: the frames of the set's videos that may still be shown (positions in
            ``partial.videos``), or None when the frame view was not kept.
    """

    partial: PosterPartial
    gallery: GalleryFrames | None = None


def cap_gallery(scored: ScoredSet, max_videos: int | None) -> ScoredSet:
    """Keep the gallery frames of the first ``max_videos`` scored videos in `gallery_order`.

    Capping commutes with merging (the first N of a union are among the first N of its
    parts), so engines may cap each set and again after merging.
    """
    g = scored.gallery
    if g is None or max_videos is None or g.frames.videos.shape[0] <= max_videos:
        return scored
    v = g.frames.videos
    p = scored.partial.videos
    order = gallery_order(p.first_hit_rank[v], p.miss_reason[v], p.video_id[v])
    return replace(scored, gallery=_take_frames(g, v[order[: max(0, max_videos)]]))


def prune_galleries(sets: Sequence[ScoredSet], max_videos: int | None) -> list[ScoredSet]:
    """Drop the gallery frames no merge of ``sets`` can show.

    Only the first ``max_videos`` gallery videos of the union (in `gallery_order`) survive
    `merge_scored` with that cap, so every other video's frames can go now: an engine that
    prunes after each unit holds at most ``max_videos`` videos' frames, not the whole
    catalog's, and the merged gallery is the same.
    """
    out = list(sets)
    with_frames = [
        (i, s.gallery, s.gallery.frames.videos)
        for i, s in enumerate(sets)
        if s.gallery is not None and s.gallery.frames.videos.shape[0]
    ]
    n = sum(v.shape[0] for _, _, v in with_frames)
    if max_videos is None or n <= max_videos:
        return out
    order = gallery_order(
        *(
            np.concatenate([getattr(sets[i].partial.videos, name)[v] for i, _, v in with_frames])
            for name in ("first_hit_rank", "miss_reason", "video_id")
        )
    )
    keep = np.zeros(n, dtype=bool)
    keep[order[: max(0, max_videos)]] = True
    start = 0
    for i, gallery, v in with_frames:
        kept = keep[start : start + v.shape[0]]
        start += v.shape[0]
        if not kept.all():
            out[i] = replace(out[i], gallery=_take_frames(gallery, v[kept]))
    return out


def _cat(parts: Sequence[np.ndarray | None]) -> np.ndarray | None:
    if any(p is None for p in parts):
        return None
    return np.concatenate([p for p in parts if p is not None])


def _merge_galleries(sets: Sequence[ScoredSet]) -> GalleryFrames | None:
    offsets = np.cumsum([0, *[len(s.partial) for s in sets]])
    with_videos = [
        (s.gallery, off) for s, off in zip(sets, offsets, strict=False) if len(s.partial)
    ]
    if not with_videos or any(g is None for g, _ in with_videos):
        return None
    galleries = [(g, int(off)) for g, off in with_videos if g is not None]
    merged: dict[str, np.ndarray] = {}
    for name in (*_MODEL, *_EXPERT, "videos"):
        values = [getattr(g.frames, name) for g, _ in galleries]
        if name in ("videos", "model_video", "expert_video"):
            values = [v + off for v, (_, off) in zip(values, galleries, strict=True)]
        merged[name] = np.concatenate(values)
    return GalleryFrames(
        FrameMatches(**merged),
        _cat([g.model_image for g, _ in galleries]),
        _cat([g.expert_image for g, _ in galleries]),
    )


def merge_scored(sets: Sequence[ScoredSet], *, max_gallery_videos: int | None) -> ScoredSet:
    """One `ScoredSet` for the union of disjoint video sets (`merge_partials`), its gallery
    capped to ``max_gallery_videos`` videos (`cap_gallery`; None keeps all)."""
    if len(sets) == 1:
        return cap_gallery(sets[0], max_gallery_videos)
    merged = ScoredSet(merge_partials([s.partial for s in sets]), _merge_galleries(sets))
    return cap_gallery(merged, max_gallery_videos)


def finished_gallery(scored: ScoredSet, order: np.ndarray) -> GalleryFrames | None:
    """The gallery of a finished evaluation: video codes in the canonical ``order``
    (`evaluator.core.partials.canonical_order`), frames grouped by video in code order, then
    by rank / timestamp (the layout of `FrameJudge.result`)."""
    if scored.gallery is None:
        return None
    position = np.empty(order.shape[0], dtype=np.int64)
    position[order] = np.arange(order.shape[0])
    g = _take_frames(scored.gallery, scored.gallery.frames.videos, position)
    f = g.frames
    m_order = np.lexsort((f.model_rank, f.model_video))
    e_order = np.lexsort((f.expert_timestamp, f.expert_video))
    frames = FrameMatches(
        videos=f.videos,
        **{k: getattr(f, k)[m_order] for k in _MODEL},
        **{k: getattr(f, k)[e_order] for k in _EXPERT},
    )
    return GalleryFrames(
        frames,
        None if g.model_image is None else g.model_image[m_order],
        None if g.expert_image is None else g.expert_image[e_order],
    )
