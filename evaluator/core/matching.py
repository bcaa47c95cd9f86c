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

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Self

import numpy as np

from evaluator.core.calibration import COSINE_BINS, candidate_histogram
from evaluator.core.candidates import candidate_window_s as candidate_window
from evaluator.core.frames import Grouped

# Reasons a scored video missed (docs/metrics.md#the-per-video-match-table); the code is the index.
MISS_REASONS = ("", "no_predictions", "similarity", "time", "time+similarity", "neither")
HIT, NO_PREDICTIONS, SIMILARITY, TIME, TIME_AND_SIMILARITY, NEITHER = range(6)

# Float64 elements gathered per chunk (expert side). With the model side (10 frames against
# >= 5 expert frames), the float32 gathers and the pair arrays a chunk's scratch is about 30
# bytes per element: 2M elements keep it near 60 MB, and the time per pair is flat from there.
_CHUNK_ELEMENTS = 2_000_000


def column(dtype: type, fill: Any, width: int = 0) -> dict[str, Any]:
    """The metadata of a per-video field of a `PerVideo` record: its dtype, the value of a
    video without one (a video that is not scored) and, for a 2-D field, each entry's width."""
    return {"dtype": dtype, "fill": fill, "width": width}


INT_COLUMN = column(np.int64, 0)
FLOAT_COLUMN = column(np.float64, np.nan)


@dataclass(frozen=True)
class PerVideo:
    """A record of aligned per-video arrays (one entry per video; each field's metadata is a
    `column`).

    Its fields are the one list of what a video carries: taking, concatenating (merging
    disjoint sets of videos) and blank records are derived from them.
    """

    def __len__(self) -> int:
        return int(getattr(self, fields(self)[0].name).shape[0])

    def take(self, index: np.ndarray) -> Self:
        """The entries at ``index`` (an integer or boolean index array)."""
        return type(self)(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @classmethod
    def concat(cls, parts: Sequence[Self]) -> Self:
        """The entries of ``parts``, one after the other."""
        return cls(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)}
        )

    @classmethod
    def blank(cls, n: int) -> Self:
        """``n`` entries, every field its fill value (videos that are not scored)."""
        values = {}
        for f in fields(cls):
            shape = (n, f.metadata["width"]) if f.metadata["width"] else n
            values[f.name] = np.full(shape, f.metadata["fill"], dtype=f.metadata["dtype"])
        return cls(**values)


@dataclass(frozen=True)
class MatchColumns(PerVideo):
    """What the match rule says about each video (docs/metrics.md#the-per-video-match-table).

    Ranks are 1-based positions in the model's rank order; 0 means "none" (and every field is
    0 / NaN for a video that is not scored). Float fields are NaN when undefined.
    """

    first_hit_rank: np.ndarray = field(metadata=INT_COLUMN)
    n_matched_model_frames: np.ndarray = field(metadata=INT_COLUMN)
    n_matched_expert_frames: np.ndarray = field(metadata=INT_COLUMN)
    best_model_rank: np.ndarray = field(metadata=INT_COLUMN)
    miss_reason: np.ndarray = field(metadata=INT_COLUMN)
    best_model_timestamp: np.ndarray = field(metadata=FLOAT_COLUMN)
    best_expert_timestamp: np.ndarray = field(metadata=FLOAT_COLUMN)
    best_dt: np.ndarray = field(metadata=FLOAT_COLUMN)
    best_cosine: np.ndarray = field(metadata=FLOAT_COLUMN)
    nearest_dt: np.ndarray = field(metadata=FLOAT_COLUMN)
    nearest_cosine: np.ndarray = field(metadata=FLOAT_COLUMN)
    min_dt: np.ndarray = field(metadata=FLOAT_COLUMN)
    max_cosine: np.ndarray = field(metadata=FLOAT_COLUMN)


MATCH_FIELDS = tuple(f.name for f in fields(MatchColumns))
# The float fields (NaN where a video has no such pair).
MATCH_FLOAT_FIELDS = tuple(
    f.name for f in fields(MatchColumns) if f.metadata["dtype"] is np.float64
)


@dataclass(frozen=True)
class VideoMatches(MatchColumns):
    """The match rule's fields for the scored (eligible) videos, aligned with ``videos``."""

    videos: np.ndarray = field(metadata=INT_COLUMN)


@dataclass(frozen=True)
class Matched:
    """What `match_videos` returns.

    Attributes:
        columns: the match fields of every video code (0 / NaN for codes not scored).
        sweep_best: (n_tau, n_scored, k_max): per tolerance, scored video and rank, the running
            maximum over ranks of the best cosine within the tolerance (-inf where nothing is
            within it; time-only: 0.0 where something is); None without a sweep grid.
        candidate_counts: histogram over `evaluator.core.calibration.COSINE_BINS` of the
            cosines of the pairs within the time tolerance, or None.
    """

    columns: MatchColumns
    sweep_best: np.ndarray | None
    candidate_counts: np.ndarray | None


@dataclass(frozen=True)
class PairBlock:
    """One chunk of scored videos with all their (model frame, expert frame) pairs and the
    rule's verdict on each: what `match_videos` hands to ``on_block`` (a frame-by-frame view
    such as the report's gallery reads the pairs from here instead of testing them again).

    Arrays are padded: c videos, Kp model frames, Ep expert frames.

    Attributes:
        rows: positions of the chunk's videos in the scored-video list, (c,).
        videos: their codes, (c,).
        model_valid / expert_valid: real (not padding) frames, (c, Kp) / (c, Ep).
        model_row / expert_row: each frame's row in the input table, (c, Kp) / (c, Ep).
        model_ts / expert_ts: timestamps, (c, Kp) / (c, Ep).
        dt: |t_model - t_expert|, (c, Kp, Ep).
        cosine: the pairs' cosines (NaN where a vector is zero or the pair is no candidate),
            or None when time-only.
        valid / time_ok / sim_ok / match: real pairs; close enough in time; similar enough;
            both (the rule).
        cos_key: the cosine used to choose between pairs (-inf where none; time-only 0.0).
    """

    rows: np.ndarray
    videos: np.ndarray
    model_valid: np.ndarray
    expert_valid: np.ndarray
    model_row: np.ndarray
    expert_row: np.ndarray
    model_ts: np.ndarray
    expert_ts: np.ndarray
    dt: np.ndarray
    cosine: np.ndarray | None
    valid: np.ndarray
    time_ok: np.ndarray
    sim_ok: np.ndarray
    match: np.ndarray
    cos_key: np.ndarray


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
    experts: Grouped,
    model: Grouped,
    videos: np.ndarray,
    *,
    time_tolerance_s: float,
    min_cosine: float | None,
    window_s: float,
) -> Iterator[PairBlock]:
    """The scored videos in chunks, every pair of a chunk tested with the rule."""
    use_embeddings = min_cosine is not None
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
        model_row = model.rows[m_idx] if len(model) else np.zeros(m_idx.shape, np.int64)
        expert_row = experts.rows[e_idx] if len(experts) else np.zeros(e_idx.shape, np.int64)
        dt = np.abs(m_ts[:, :, None] - e_ts[:, None, :])
        cosine = None
        if use_embeddings:
            if len(model) and model.embedding is not None and experts.embedding is not None:
                cosine = _cosines(model.embedding[model_row], experts.embedding[expert_row])
                # Only candidate pairs have cosines (`evaluator.core.candidates`).
                cosine[dt > window_s] = np.nan
            else:
                cosine = np.full(dt.shape, np.nan)
        valid = m_valid[:, :, None] & e_valid[:, None, :]
        time_ok = valid & (dt <= time_tolerance_s)
        if cosine is None:
            # Time-only: every pair is "similar enough"; cosine plays no part in choices.
            cos_key = np.where(valid, 0.0, -np.inf)
            sim_ok = valid
        else:
            cos_key = np.where(valid & ~np.isnan(cosine), cosine, -np.inf)
            with np.errstate(invalid="ignore"):
                sim_ok = valid & (cosine >= min_cosine)
        yield PairBlock(
            rows=rows,
            videos=vids,
            model_valid=m_valid,
            expert_valid=e_valid,
            model_row=model_row,
            expert_row=expert_row,
            model_ts=m_ts,
            expert_ts=e_ts,
            dt=dt,
            cosine=cosine,
            valid=valid,
            time_ok=time_ok,
            sim_ok=sim_ok,
            match=time_ok & sim_ok,
            cos_key=cos_key,
        )


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
    candidate_cosines: bool = False,
    candidate_window_s: float | None = None,
    on_block: Callable[[PairBlock], None] | None = None,
) -> Matched:
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
        candidate_cosines: also count the cosines of the pairs within the time tolerance
            (`Matched.candidate_counts`, the calibration plot's input).
        candidate_window_s: pairs further apart in time have no cosine (as if a vector were
            zero): the rule and the sweep never look at them, and the diagnostics that test
            similarity alone (``max_cosine``, ``nearest_*``, the miss reason, a frame view's
            status) are defined over the candidate pairs, so frames left out by
            `evaluator.core.candidates.frames_to_embed` change nothing. None = the largest of
            ``time_tolerance_s`` and ``sweep_time_tolerances_s``.
        on_block: called with every `PairBlock` once the rule has tested its pairs (a
            frame-by-frame view, in the same pass over the pairs).

    Returns:
        The match fields of every video code, the sweep's input and the candidate counts.
    """
    use_emb = min_cosine is not None
    out = MatchColumns.blank(experts.count.shape[0])
    taus = np.asarray(sweep_time_tolerances_s, dtype=np.float64)
    sweep_best = np.full((taus.shape[0], videos.shape[0], k_max), -np.inf) if taus.size else None
    if candidate_window_s is None:
        candidate_window_s = candidate_window(time_tolerance_s, sweep_time_tolerances_s)
    candidates = np.zeros(COSINE_BINS.shape[0] - 1, np.int64) if candidate_cosines else None
    for block in _blocks(
        experts,
        model,
        videos,
        time_tolerance_s=time_tolerance_s,
        min_cosine=min_cosine,
        window_s=candidate_window_s,
    ):
        if candidates is not None and block.cosine is not None:
            candidates += candidate_histogram(block.cosine[block.time_ok])
        if on_block is not None:
            on_block(block)
        _video_fields(block, out)
        if sweep_best is not None:
            _sweep_rows(block, taus, sweep_best)
    return Matched(out, sweep_best, candidates if use_emb else None)


def _video_fields(block: PairBlock, out: MatchColumns) -> None:
    """Write the match fields of one block's videos into ``out`` (indexed by video code)."""
    at = block.videos
    model_hit = np.asarray(block.match.any(axis=2))
    has_hit = np.asarray(model_hit.any(axis=1))
    has_model = np.asarray(block.model_valid.any(axis=1))
    first = np.argmax(model_hit, axis=1) if model_hit.shape[1] else np.zeros(len(at), int)
    out.first_hit_rank[at] = np.where(has_hit, first + 1, 0)
    out.n_matched_model_frames[at] = model_hit.sum(axis=1)
    out.n_matched_expert_frames[at] = block.match.any(axis=1).sum(axis=1)
    if model_hit.shape[1]:
        first_dt, first_cos = _first_hit_pair(block, first, has_hit, out)
        _nearest_pair(block, has_hit, has_model, first_dt, first_cos, out)
    any_time = np.asarray(block.time_ok.any(axis=(1, 2)))
    any_sim = np.asarray(block.sim_ok.any(axis=(1, 2)))
    out.miss_reason[at] = np.select(
        [has_hit, ~has_model, any_time & ~any_sim, any_sim & ~any_time, any_time & any_sim],
        [HIT, NO_PREDICTIONS, SIMILARITY, TIME, TIME_AND_SIMILARITY],
        default=NEITHER,
    )


def _first_hit_pair(
    block: PairBlock, first: np.ndarray, has_hit: np.ndarray, out: MatchColumns
) -> tuple[np.ndarray, np.ndarray]:
    """The pair behind the first hit: the most similar matching expert at that rank, then the
    closest in time, then the earliest expert frame. Returns its |dt| and cosine per video."""
    c = np.arange(len(block.rows))
    row_match = block.match[c, first]
    row_cos = np.where(row_match, block.cos_key[c, first], -np.inf)
    best_cos = row_cos.max(axis=1)
    row_dt = np.where(row_match & (row_cos == best_cos[:, None]), block.dt[c, first], np.inf)
    best_e = np.argmin(row_dt, axis=1)
    best_dt = _pick(row_dt, best_e)
    hit = block.videos[has_hit]
    out.best_model_rank[hit] = first[has_hit] + 1
    out.best_model_timestamp[hit] = block.model_ts[c, first][has_hit]
    out.best_expert_timestamp[hit] = _pick(block.expert_ts, best_e)[has_hit]
    out.best_dt[hit] = best_dt[has_hit]
    if block.cosine is not None:
        out.best_cosine[hit] = best_cos[has_hit]
    return best_dt, best_cos


def _nearest_pair(
    block: PairBlock,
    has_hit: np.ndarray,
    has_model: np.ndarray,
    first_dt: np.ndarray,
    first_cos: np.ndarray,
    out: MatchColumns,
) -> None:
    """The nearest pair, for plots: for a hit the pair behind the first hit; for a miss, among
    pairs close enough in time the most similar; else among similar-enough pairs the closest in
    time; else the most similar pair overall. Also the smallest |dt| and largest cosine."""
    valid, dt, time_ok, sim_ok = block.valid, block.dt, block.time_ok, block.sim_ok
    any_time = np.asarray(time_ok.any(axis=(1, 2)))
    any_sim = np.asarray(sim_ok.any(axis=(1, 2)))
    by_cos_set = np.where(any_time[:, None, None], time_ok, valid)
    use_dt_first = ~any_time & any_sim
    flat = (len(block.rows), -1)
    cos_key = np.where(by_cos_set, block.cos_key, -np.inf).reshape(flat)
    dt_in_sim = np.where(sim_ok, dt, np.inf).reshape(flat)
    dt_flat, cos_flat = dt.reshape(flat), block.cos_key.reshape(flat)
    # Lexicographic choice: primary key, then the other one as tie-break.
    pri_cos = cos_key.max(axis=1)
    in_set = by_cos_set.reshape(flat)
    tie_dt = np.where(in_set & (cos_key == pri_cos[:, None]), dt_flat, np.inf)
    idx_cos_first = np.argmin(tie_dt, axis=1)
    pri_dt = dt_in_sim.min(axis=1)
    tie_cos = np.where(sim_ok.reshape(flat) & (dt_in_sim == pri_dt[:, None]), cos_flat, -np.inf)
    idx_dt_first = np.argmax(tie_cos, axis=1)
    nearest = np.where(use_dt_first, idx_dt_first, idx_cos_first)
    sel = block.videos[has_model]
    out.nearest_dt[sel] = np.where(has_hit, first_dt, _pick(dt_flat, nearest))[has_model]
    out.min_dt[sel] = np.where(valid, dt, np.inf).min(axis=(1, 2))[has_model]
    if block.cosine is not None:
        near_cos = np.where(has_hit, first_cos, _pick(block.cosine.reshape(flat), nearest))
        out.nearest_cosine[sel] = near_cos[has_model]
        max_cos = block.cos_key.max(axis=(1, 2))
        out.max_cosine[sel] = np.where(np.isfinite(max_cos), max_cos, np.nan)[has_model]


def _sweep_rows(block: PairBlock, taus: np.ndarray, sweep_best: np.ndarray) -> None:
    """Per tolerance: the running maximum over ranks of the best cosine within it."""
    kp = block.model_valid.shape[1]
    if not kp:
        return
    for i, tau in enumerate(taus):
        best = np.where(block.valid & (block.dt <= tau), block.cos_key, -np.inf).max(axis=2)
        running = np.maximum.accumulate(best, axis=1)
        sweep_best[i, block.rows, :kp] = running
        # Ranks past the video's last model frame keep the running maximum.
        sweep_best[i, block.rows, kp:] = running[:, -1:]
