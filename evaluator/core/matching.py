"""The match rule, evaluated for all (model frame, expert frame) pairs of every video at once.

Videos are processed in chunks. Inside a chunk, each video's model frames (at most k_max) and
expert frames are gathered into padded arrays, so every pair of the chunk is one element of a
(videos, model frames, expert frames) block and the whole rule is a handful of array operations.
Videos are sorted by their number of expert frames before chunking, so padding stays small.

Exactness (docs/metrics.md#the-match-rule): time differences are float64 with no epsilon; cosines
are computed in float64 as ``dot(a, b) / sqrt(dot(a, a) * dot(b, b))`` with the same summation
routine for the dot products and the norms, so identical (or power-of-two scaled) vectors give
exactly 1 and exactly representable cases such as [1,0,0,0] against [1,1,1,1] give exactly 0.5.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from evaluator.core.calibration import COSINE_BINS, candidate_histogram
from evaluator.core.candidates import candidate_window_s as candidate_window
from evaluator.core.frames import Grouped

# Reasons a scored video missed (docs/metrics.md#the-per-video-match-table); the code is the index.
MISS_REASONS = ("", "no_predictions", "similarity", "time", "time+similarity", "neither")
HIT, NO_PREDICTIONS, SIMILARITY, TIME, TIME_AND_SIMILARITY, NEITHER = range(6)

# How one model frame fared (the report's gallery); the code is the index.
FRAME_STATUSES = ("hit", "near_time", "near_similarity", "far")
FRAME_HIT, FRAME_NEAR_TIME, FRAME_NEAR_SIMILARITY, FRAME_FAR = range(4)

# The float per-video fields of `VideoMatches` (NaN where a video has no such pair).
MATCH_FLOAT_FIELDS = (
    "best_model_timestamp",
    "best_expert_timestamp",
    "best_dt",
    "best_cosine",
    "nearest_dt",
    "nearest_cosine",
    "min_dt",
    "max_cosine",
)

# Float64 elements gathered per chunk (expert side). With the model side (10 frames against
# >= 5 expert frames), the float32 gathers and the pair arrays a chunk's scratch is about 30
# bytes per element: 2M elements keep it near 60 MB, and the time per pair is flat from there.
_CHUNK_ELEMENTS = 2_000_000


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


@dataclass(frozen=True)
class VideoMatches:
    """Per-video results of the match rule for the scored (eligible) videos.

    All arrays have one entry per scored video, aligned with ``videos``. Ranks are 1-based
    positions in the model's rank order; 0 means "none". Float fields are NaN when undefined.
    """

    videos: np.ndarray
    first_hit_rank: np.ndarray
    n_matched_model_frames: np.ndarray
    n_matched_expert_frames: np.ndarray
    best_model_rank: np.ndarray
    best_model_timestamp: np.ndarray
    best_expert_timestamp: np.ndarray
    best_dt: np.ndarray
    best_cosine: np.ndarray
    nearest_dt: np.ndarray
    nearest_cosine: np.ndarray
    min_dt: np.ndarray
    max_cosine: np.ndarray
    miss_reason: np.ndarray
    sweep_best: np.ndarray | None
    frames: FrameMatches | None = None
    # Histogram over `evaluator.core.calibration.COSINE_BINS` of the cosines of the pairs
    # within the time tolerance (``candidate_cosines=True`` with vectors), else None.
    candidate_counts: np.ndarray | None = None


@dataclass(frozen=True)
class _Block:
    """One chunk of videos with all their pairs as padded arrays."""

    rows: np.ndarray  # positions of the chunk's videos in the scored-video list
    model_valid: np.ndarray  # (c, Kp)
    expert_valid: np.ndarray  # (c, Ep)
    model_ts: np.ndarray  # (c, Kp)
    expert_ts: np.ndarray  # (c, Ep)
    dt: np.ndarray  # (c, Kp, Ep) |t_model - t_expert|
    cosine: np.ndarray | None  # (c, Kp, Ep), NaN where a vector is zero; None = time-only

    @property
    def pair_valid(self) -> np.ndarray:
        return self.model_valid[:, :, None] & self.expert_valid[:, None, :]


def _chunk_bounds(expert_counts_sorted: np.ndarray, width: int) -> Iterator[tuple[int, int]]:
    """Split videos (sorted by expert count) into chunks of bounded padded size."""
    n = expert_counts_sorted.shape[0]
    per_video = np.maximum(expert_counts_sorted, 1) * max(width, 1)
    start = 0
    while start < n:
        # Padded size of [start, end) is (end - start) * per_video[end - 1]: increasing in end.
        sizes = (np.arange(1, n - start + 1)) * per_video[start:]
        end = start + max(1, int(np.searchsorted(sizes, _CHUNK_ELEMENTS, side="right")))
        yield start, end
        start = end


def _padded_index(start: np.ndarray, count: np.ndarray, width: int) -> tuple[np.ndarray, ...]:
    slot = np.arange(width)
    valid = slot[None, :] < count[:, None]
    index = np.where(valid, start[:, None] + slot[None, :], 0)
    return index, valid


def _cosines(model_emb: np.ndarray, expert_emb: np.ndarray) -> np.ndarray:
    m = model_emb.astype(np.float64)
    x = expert_emb.astype(np.float64)
    # One summation routine (einsum without BLAS) for dots and norms: see module docstring.
    dots = np.einsum("vkd,ved->vke", m, x)
    norm_m = np.einsum("vkd,vkd->vk", m, m)
    norm_x = np.einsum("ved,ved->ve", x, x)
    denom = np.sqrt(norm_m[:, :, None] * norm_x[:, None, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(denom > 0, dots / denom, np.nan)
    return np.clip(cos, -1.0, 1.0)


def _blocks(
    experts: Grouped, model: Grouped, videos: np.ndarray, use_embeddings: bool, window_s: float
) -> Iterator[_Block]:
    order = np.argsort(experts.count[videos], kind="stable")
    dim = 1
    if use_embeddings and experts.embedding is not None:
        dim = experts.embedding.shape[1]
    for lo, hi in _chunk_bounds(experts.count[videos[order]], dim):
        rows = order[lo:hi]
        vids = videos[rows]
        e_count = experts.count[vids]
        m_count = model.count[vids]
        e_idx, e_valid = _padded_index(experts.start[vids], e_count, int(e_count.max()))
        m_idx, m_valid = _padded_index(model.start[vids], m_count, int(m_count.max(initial=0)))
        e_ts = experts.timestamp[e_idx] if len(experts) else np.zeros(e_idx.shape)
        m_ts = model.timestamp[m_idx] if len(model) else np.zeros(m_idx.shape)
        dt = np.abs(m_ts[:, :, None] - e_ts[:, None, :])
        cosine = None
        if use_embeddings:
            if len(model) and model.embedding is not None and experts.embedding is not None:
                cosine = _cosines(
                    model.embedding[model.rows[m_idx]], experts.embedding[experts.rows[e_idx]]
                )
                # Only candidate pairs have cosines (`evaluator.core.candidates`).
                cosine[dt > window_s] = np.nan
            else:
                cosine = np.full(dt.shape, np.nan)
        yield _Block(rows, m_valid, e_valid, m_ts, e_ts, dt, cosine)


def _pick(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """values[i, index[i]] for a 2-D array."""
    return np.take_along_axis(values, index[:, None], axis=1)[:, 0]


def match_videos(
    experts: Grouped,
    model: Grouped,
    videos: np.ndarray,
    *,
    time_tolerance_s: float,
    min_cosine: float | None,
    k_max: int,
    sweep_time_tolerances_s: Sequence[float] = (),
    judge_frames: bool = False,
    candidate_cosines: bool = False,
    candidate_window_s: float | None = None,
) -> VideoMatches:
    """Apply the match rule to every pair of every scored video.

    A model frame matches an expert frame when ``|t_m - t_e| <= time_tolerance_s`` and
    ``cosine(e_m, e_e) >= min_cosine`` (both inclusive; a zero vector matches nothing;
    ``min_cosine=None`` checks time only).

    Args:
        experts: expert frames grouped by video, sorted by timestamp within a video.
        model: model frames grouped by video, in rank order, already truncated to k_max.
        videos: codes of the scored videos.
        time_tolerance_s: the time tolerance in seconds.
        min_cosine: the minimum cosine similarity, or None for time-only matching.
        k_max: the number of model frames considered per video.
        sweep_time_tolerances_s: tolerances for which to also return, per video and rank, the
            running maximum over ranks of the best cosine within that tolerance (the sweep's
            input); empty to skip.
        judge_frames: also judge every model frame on its own (`FrameMatches`, for the
            report's gallery) in the same pass over the pairs.
        candidate_cosines: also count the cosines of the pairs within the time tolerance
            (`VideoMatches.candidate_counts`, the calibration plot's input).
        candidate_window_s: pairs further apart in time have no cosine (as if a vector were
            zero): the rule and the sweep never look at them, and the diagnostics that test
            similarity alone (``max_cosine``, ``nearest_*``, the miss reason, the gallery's
            status) are defined over the candidate pairs, so frames left out by
            `evaluator.core.candidates.frames_to_embed` change nothing. None = the largest of
            ``time_tolerance_s`` and ``sweep_time_tolerances_s``.

    Returns:
        VideoMatches for ``videos``; ``sweep_best`` has shape (n_tau, n_videos, k_max), -inf
        where nothing is within the tolerance (time-only: 0.0 where something is).
    """
    n = videos.shape[0]
    use_emb = min_cosine is not None
    out_int = {
        k: np.zeros(n, dtype=np.int64)
        for k in (
            "first_hit_rank",
            "n_matched_model_frames",
            "n_matched_expert_frames",
            "best_model_rank",
            "miss_reason",
        )
    }
    out_float = {k: np.full(n, np.nan) for k in MATCH_FLOAT_FIELDS}
    taus = np.asarray(sweep_time_tolerances_s, dtype=np.float64)
    sweep_best = np.full((taus.shape[0], n, k_max), -np.inf) if taus.size else None

    if candidate_window_s is None:
        candidate_window_s = candidate_window(time_tolerance_s, sweep_time_tolerances_s)
    judge = _FrameJudge(experts, model, videos) if judge_frames else None
    candidates = np.zeros(COSINE_BINS.shape[0] - 1, np.int64) if candidate_cosines else None
    for block in _blocks(experts, model, videos, use_emb, candidate_window_s):
        rows = block.rows
        valid = block.pair_valid
        dt = block.dt
        time_ok = valid & (dt <= time_tolerance_s)
        if block.cosine is None:
            # Time-only: every pair is "similar enough"; cosine plays no part in choices.
            cos_for_choice = np.where(valid, 0.0, -np.inf)
            sim_ok = valid
        else:
            cos_for_choice = np.where(valid & ~np.isnan(block.cosine), block.cosine, -np.inf)
            with np.errstate(invalid="ignore"):
                sim_ok = valid & (block.cosine >= min_cosine)
        match = time_ok & sim_ok
        if candidates is not None and block.cosine is not None:
            candidates += candidate_histogram(block.cosine[time_ok])
        if judge is not None:
            judge.add(block, valid, dt, time_ok, sim_ok, cos_for_choice, match)
        model_hit = match.any(axis=2)
        has_hit = model_hit.any(axis=1)
        first = np.argmax(model_hit, axis=1) if model_hit.shape[1] else np.zeros(len(rows), int)
        out_int["first_hit_rank"][rows] = np.where(has_hit, first + 1, 0)
        out_int["n_matched_model_frames"][rows] = model_hit.sum(axis=1)
        out_int["n_matched_expert_frames"][rows] = match.any(axis=1).sum(axis=1)

        # The pair behind the first hit: the most similar matching expert at that rank,
        # then the closest in time, then the earliest expert frame.
        has_model = block.model_valid.any(axis=1)
        if model_hit.shape[1]:
            c = np.arange(len(rows))
            row_match = match[c, first]
            row_cos = np.where(row_match, cos_for_choice[c, first], -np.inf)
            best_cos = row_cos.max(axis=1)
            row_dt = np.where(row_match & (row_cos == best_cos[:, None]), dt[c, first], np.inf)
            best_e = np.argmin(row_dt, axis=1)
            hit_rows = rows[has_hit]
            out_int["best_model_rank"][hit_rows] = first[has_hit] + 1
            out_float["best_model_timestamp"][hit_rows] = block.model_ts[c, first][has_hit]
            out_float["best_expert_timestamp"][hit_rows] = _pick(block.expert_ts, best_e)[has_hit]
            out_float["best_dt"][hit_rows] = _pick(row_dt, best_e)[has_hit]
            if block.cosine is not None:
                out_float["best_cosine"][hit_rows] = best_cos[has_hit]

            # The nearest pair, for plots: for a hit the pair behind the first hit; for a miss,
            # among pairs close enough in time the most similar; else among similar-enough
            # pairs the closest in time; else the most similar pair overall.
            any_time = np.asarray(time_ok.any(axis=(1, 2)))
            any_sim = np.asarray(sim_ok.any(axis=(1, 2)))
            by_cos_set = np.where(any_time[:, None, None], time_ok, valid)
            use_dt_first = ~any_time & any_sim
            flat = (len(rows), -1)
            cos_key = np.where(by_cos_set, cos_for_choice, -np.inf).reshape(flat)
            dt_in_sim = np.where(sim_ok, dt, np.inf).reshape(flat)
            dt_flat, cos_flat = dt.reshape(flat), cos_for_choice.reshape(flat)
            # Lexicographic choice: primary key, then the other one as tie-break.
            pri_cos = cos_key.max(axis=1)
            in_set = by_cos_set.reshape(flat)
            tie_dt = np.where(in_set & (cos_key == pri_cos[:, None]), dt_flat, np.inf)
            idx_cos_first = np.argmin(tie_dt, axis=1)
            pri_dt = dt_in_sim.min(axis=1)
            tie_cos = np.where(
                sim_ok.reshape(flat) & (dt_in_sim == pri_dt[:, None]), cos_flat, -np.inf
            )
            idx_dt_first = np.argmax(tie_cos, axis=1)
            nearest = np.where(use_dt_first, idx_dt_first, idx_cos_first)
            sel = rows[has_model]
            near_dt = np.where(has_hit, _pick(row_dt, best_e), _pick(dt_flat, nearest))
            out_float["nearest_dt"][sel] = near_dt[has_model]
            if block.cosine is not None:
                near_cos = np.where(has_hit, best_cos, _pick(block.cosine.reshape(flat), nearest))
                out_float["nearest_cosine"][sel] = near_cos[has_model]

            out_float["min_dt"][sel] = np.where(valid, dt, np.inf).min(axis=(1, 2))[has_model]
            if block.cosine is not None:
                max_cos = cos_for_choice.max(axis=(1, 2))
                out_float["max_cosine"][sel] = np.where(np.isfinite(max_cos), max_cos, np.nan)[
                    has_model
                ]
        else:
            any_time = np.zeros(len(rows), dtype=bool)
            any_sim = np.zeros(len(rows), dtype=bool)

        reason = np.select(
            [has_hit, ~has_model, any_time & ~any_sim, any_sim & ~any_time, any_time & any_sim],
            [HIT, NO_PREDICTIONS, SIMILARITY, TIME, TIME_AND_SIMILARITY],
            default=NEITHER,
        )
        out_int["miss_reason"][rows] = reason

        if sweep_best is not None and model_hit.shape[1]:
            kp = model_hit.shape[1]
            for i, tau in enumerate(taus):
                best = np.where(valid & (dt <= tau), cos_for_choice, -np.inf).max(axis=2)
                running = np.maximum.accumulate(best, axis=1)
                sweep_best[i, rows, :kp] = running
                # Ranks past the video's last model frame keep the running maximum.
                sweep_best[i, rows, kp:] = running[:, -1:]

    frames = judge.result() if judge is not None else None
    return VideoMatches(
        videos=videos,
        sweep_best=sweep_best,
        frames=frames,
        candidate_counts=candidates if use_emb else None,
        **out_int,
        **out_float,
    )


class _FrameJudge:
    """Collects, block by block, the frame-by-frame view (`FrameMatches`) of `match_videos`."""

    def __init__(self, experts: Grouped, model: Grouped, videos: np.ndarray) -> None:
        self.experts, self.model, self.videos = experts, model, videos
        self.m_parts: dict[str, list[np.ndarray]] = {
            k: [] for k in ("pos", "video", "row", "rank", "ts", "status", "dt", "cos", "ets")
        }
        self.e_parts: dict[str, list[np.ndarray]] = {
            k: [] for k in ("pos", "video", "row", "ts", "hit")
        }

    def add(
        self,
        block: _Block,
        valid: np.ndarray,
        dt: np.ndarray,
        time_ok: np.ndarray,
        sim_ok: np.ndarray,
        cos_key: np.ndarray,
        match: np.ndarray,
    ) -> None:
        """Judge every model frame of one block (same pairs, same rule as the video view)."""
        experts, model, videos = self.experts, self.model, self.videos
        m_parts, e_parts = self.m_parts, self.e_parts
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
        vids = videos[block.rows]
        slot = np.broadcast_to(np.arange(mv.shape[1])[None, :], mv.shape)
        m_index = model.start[vids][:, None] + slot
        m_parts["pos"].append(np.broadcast_to(block.rows[:, None], mv.shape)[mv])
        m_parts["video"].append(np.broadcast_to(vids[:, None], mv.shape)[mv])
        m_parts["row"].append(model.rows[m_index[mv]])
        m_parts["rank"].append(slot[mv] + 1)
        m_parts["ts"].append(block.model_ts[mv])
        m_parts["status"].append(status[mv])
        m_parts["dt"].append(pick_dt[mv])
        m_parts["cos"].append(pick_cos[mv])
        m_parts["ets"].append(pick_ets[mv])

        ev = block.expert_valid
        e_slot = np.broadcast_to(np.arange(ev.shape[1])[None, :], ev.shape)
        e_index = experts.start[vids][:, None] + e_slot
        e_parts["pos"].append(np.broadcast_to(block.rows[:, None], ev.shape)[ev])
        e_parts["video"].append(np.broadcast_to(vids[:, None], ev.shape)[ev])
        e_parts["row"].append(experts.rows[e_index[ev]])
        e_parts["ts"].append(block.expert_ts[ev])
        e_parts["hit"].append(np.asarray(match.any(axis=1))[ev])

    def result(self) -> FrameMatches:
        """The collected frames, ordered by scored video, then rank / timestamp."""
        videos, m_parts, e_parts = self.videos, self.m_parts, self.e_parts

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
