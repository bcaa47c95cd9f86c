"""Poster-frame evaluation: the test set, the match rule, every metric and the sweep.

See docs/metrics.md#the-match-rule, #poster-metrics and #the-threshold-sweep.

One route from frames to numbers: `score_set` turns all rows of a set of videos into its
`PosterPartial` (per video a `VideoOutcomes` entry, the sweep as hit counts), and
`poster_result` assembles the metrics and the sweep from the per-video outcomes of every video.
`evaluate_poster` is the two of them over one set; engines score many sets and merge their
partials first (`evaluator.core.partials`). No I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from evaluator.core.bounds import POSTER_BOUNDS, check_setting
from evaluator.core.calibration import ExpertPool, centred, vector_rows
from evaluator.core.candidates import candidate_window_s
from evaluator.core.digest import video_digests
from evaluator.core.frames import Frames, exact_duplicate_mask, group_for_matching
from evaluator.core.matching import (
    INT_COLUMN,
    MATCH_FIELDS,
    MatchColumns,
    PairBlock,
    VideoMatches,
    column,
    match_videos,
)
from evaluator.core.sweep_defaults import DEFAULT_SWEEP_MIN_COSINES


@dataclass(frozen=True)
class PosterSettings:
    """Settings that change the numbers (docs/metrics.md#the-match-rule).

    Attributes:
        time_tolerance_s: max |t_model - t_expert| in seconds, inclusive.
        min_cosine: min cosine similarity, inclusive; None = time-only matching.
        min_expert_frames: expert frames a video needs to be scored (>= 1).
        k_max: model frames considered per video (>= 1).
        sweep_time_tolerances_s: tolerances of the threshold sweep (empty = no sweep).
        sweep_min_cosines: cosines of the threshold sweep (ignored when time-only).
    """

    time_tolerance_s: float = 3.0
    min_cosine: float | None = 0.5
    min_expert_frames: int = 5
    k_max: int = 10
    sweep_time_tolerances_s: tuple[float, ...] = ()
    sweep_min_cosines: tuple[float, ...] = DEFAULT_SWEEP_MIN_COSINES

    def __post_init__(self) -> None:
        # The ranges of the config keys these fields come from (evaluator.config_checks).
        for name, bound in POSTER_BOUNDS.items():
            check_setting(bound, getattr(self, name))

    @property
    def candidate_window_s(self) -> float:
        """The largest time tolerance in use (`evaluator.core.candidates.candidate_window_s`)."""
        return candidate_window_s(self.time_tolerance_s, self.sweep_time_tolerances_s)

    @property
    def report_ks(self) -> tuple[int, ...]:
        """The cut-offs with their own columns and intervals: 1, 5 and k_max (those <= k_max)."""
        return tuple(sorted({k for k in (1, 5, self.k_max) if k <= self.k_max}))


@dataclass(frozen=True)
class SweepResult:
    """Recall@k over a grid of thresholds (docs/metrics.md#the-threshold-sweep).

    Attributes:
        time_tolerances_s: the tau grid, shape (n_tau,).
        min_cosines: the theta grid, shape (n_theta,); a single NaN when matching is time-only.
        recall: recall[i, j, k - 1] = recall@k at (tau_i, theta_j), shape (n_tau, n_theta, K).
    """

    time_tolerances_s: np.ndarray
    min_cosines: np.ndarray
    recall: np.ndarray


@dataclass(frozen=True)
class PosterResult:
    """Everything one poster evaluation reports.

    Attributes:
        settings: the settings used.
        metrics: metric name -> value (docs/metrics.md#poster-metrics names), counts included.
        recall_curve: recall@k for k = 1..k_max, shape (k_max,).
        n_videos: number of video codes (every video in either table).
        eligible: bool per video code.
        n_expert_frames: expert frames per video code after dropping exact duplicates.
        n_model_frames: model frames considered per video code (at most k_max).
        n_model_frames_truncated: model frames beyond k_max per video code.
        matches: per-video match results for the eligible videos.
        sweep: the threshold sweep, or None when no sweep grid was given.
    """

    settings: PosterSettings
    metrics: dict[str, float]
    recall_curve: np.ndarray
    n_videos: int
    eligible: np.ndarray
    n_expert_frames: np.ndarray
    n_model_frames: np.ndarray
    n_model_frames_truncated: np.ndarray
    matches: VideoMatches
    sweep: SweepResult | None

    @property
    def hits(self) -> np.ndarray:
        """(n_eligible, k_max) bool: hit within the first k frames, for k = 1..k_max."""
        fh = self.matches.first_hit_rank
        ks = np.arange(1, self.settings.k_max + 1)
        return (fh[:, None] >= 1) & (fh[:, None] <= ks[None, :])


def recall_from_first_hit(first_hit_rank: np.ndarray, k_max: int) -> np.ndarray:
    """recall@k for k = 1..k_max from first-hit ranks (0 = miss).

    recall@k = |{videos with 1 <= first_hit_rank <= k}| / |videos|.
    """
    n = first_hit_rank.shape[0]
    if n == 0:
        return np.full(k_max, np.nan)
    counts = np.bincount(first_hit_rank, minlength=k_max + 1)[1 : k_max + 1]
    return np.cumsum(counts) / n


def sweep_hit_counts(sweep_best: np.ndarray, min_cosines: Sequence[float] | None) -> np.ndarray:
    """Per (tau, theta, k): how many videos hit within k frames (the mergeable sweep).

    A video hits within k frames at (tau, theta) iff the running maximum, over the first k
    ranks, of the best cosine among expert frames within tau is >= theta; the same comparisons
    a full evaluation makes, so every grid value equals a full evaluation's. Counts of disjoint
    video sets add up.

    Args:
        sweep_best: (n_tau, n_videos, K) from `match_videos`.
        min_cosines: the theta grid, or None for time-only matching.

    Returns:
        int64 counts of shape (n_tau, n_theta, K) (`sweep_thetas` of ``min_cosines``).
    """
    if min_cosines is None:
        hit = (sweep_best > -np.inf)[:, None]
    else:
        thetas = sweep_thetas(min_cosines)
        hit = sweep_best[:, None, :, :] >= thetas[None, :, None, None]
    return hit.sum(axis=2, dtype=np.int64)


def sweep_thetas(min_cosines: Sequence[float] | None) -> np.ndarray:
    """The sweep's theta grid as an array: a single NaN when matching is time-only."""
    return np.array([np.nan]) if min_cosines is None else np.asarray(min_cosines, np.float64)


def input_counts(
    has_experts: np.ndarray,
    eligible: np.ndarray,
    has_predictions: np.ndarray,
    truncated: np.ndarray,
    duplicates: np.ndarray,
) -> dict[str, int]:
    """The ``counts`` of `poster_metrics` from per-video masks (videos with expert rows,
    eligible ones, videos with prediction rows) and arrays whose sums are the truncated
    predictions and the dropped duplicate expert rows (per-video counts or per-row masks)."""
    return {
        "n_videos_excluded": int((has_experts & ~eligible).sum()),
        "n_prediction_videos_unknown": int((has_predictions & ~has_experts).sum()),
        "n_predictions_truncated": int(truncated.sum()),
        "n_expert_duplicates_dropped": int(duplicates.sum()),
    }


def poster_metrics(
    settings: PosterSettings,
    matches: VideoMatches,
    n_expert: np.ndarray,
    considered: np.ndarray,
    counts: dict[str, int],
) -> tuple[dict[str, float], np.ndarray]:
    """The metrics (docs/metrics.md#poster-metrics) from the per-video results of eligible videos.

    Args:
        settings: the settings used.
        matches: per-video results in the canonical video order (means are summed in it).
        n_expert: kept expert frames per scored video, aligned with ``matches.videos``.
        considered: model frames considered per scored video (at most k_max), aligned too.
        counts: ``n_videos_excluded``, ``n_prediction_videos_unknown``,
            ``n_predictions_truncated`` and ``n_expert_duplicates_dropped``.

    Returns:
        (metric name -> value, recall@k for k = 1..k_max).
    """
    k_max = settings.k_max
    curve = recall_from_first_hit(matches.first_hit_rank, k_max)
    n_elig = matches.videos.shape[0]
    fh = matches.first_hit_rank
    with np.errstate(invalid="ignore", divide="ignore"):
        reciprocal = np.where(fh > 0, 1.0 / np.maximum(fh, 1), 0.0)
        precision = np.where(considered > 0, matches.n_matched_model_frames / considered, 0.0)
        coverage = matches.n_matched_expert_frames / n_expert

    def mean(values: np.ndarray) -> float:
        return float(values.mean()) if n_elig else float("nan")

    metrics: dict[str, float] = {f"recall_at_{k}": float(curve[k - 1]) for k in range(1, k_max + 1)}
    metrics[f"mrr_at_{k_max}"] = mean(reciprocal)
    metrics[f"precision_at_{k_max}"] = mean(precision)
    metrics[f"expert_coverage_at_{k_max}"] = mean(coverage)
    metrics.update(
        n_videos_eligible=float(n_elig),
        n_videos_excluded=float(counts["n_videos_excluded"]),
        n_videos_without_predictions=float((considered == 0).sum()),
        n_prediction_videos_unknown=float(counts["n_prediction_videos_unknown"]),
        n_predictions_truncated=float(counts["n_predictions_truncated"]),
        n_expert_duplicates_dropped=float(counts["n_expert_duplicates_dropped"]),
        n_expert_frames_eligible=float(n_expert.sum()),
        n_model_frames_considered=float(considered.sum()),
    )
    return metrics, curve


@dataclass(frozen=True)
class VideoOutcomes(MatchColumns):
    """Everything a video contributes to the result: one entry per video, in any order.

    Its fields (with those of `evaluator.core.matching.MatchColumns`) are the one list of
    per-video outcomes: partials of disjoint video sets merge by concatenating them. Every
    count is after the core's rules (exact duplicate expert rows dropped, model frames of
    videos without expert frames ignored, at most k_max model frames considered); the match
    fields are 0 / NaN for a video that is not scored.

    Attributes:
        video_id: id per video (object array); distinct within an evaluation.
        order_key: the video's canonical position: results list videos in this order (ties
            by id), means are summed in it. The local engine uses the position of the video's
            first row in "all expert rows, then all prediction rows" (file order over the part
            files), which is exactly the order of an in-memory evaluation.
        n_expert_frames: kept expert frames (after dropping exact duplicates).
        n_expert_duplicates: exact duplicate expert rows dropped.
        n_prediction_rows: prediction rows of the video (all of them).
        n_model_frames: model frames considered (at most k_max; 0 when no expert frames).
        n_model_frames_truncated: model frames past k_max (videos with expert frames only).
        digest: (n, 2) uint64 `evaluator.core.digest.video_digests` of each eligible video's
            kept expert rows (zeros for the others, and when not asked for).
    """

    video_id: np.ndarray = field(metadata=column(object, ""))
    order_key: np.ndarray = field(metadata=INT_COLUMN)
    n_expert_frames: np.ndarray = field(metadata=INT_COLUMN)
    n_expert_duplicates: np.ndarray = field(metadata=INT_COLUMN)
    n_prediction_rows: np.ndarray = field(metadata=INT_COLUMN)
    n_model_frames: np.ndarray = field(metadata=INT_COLUMN)
    n_model_frames_truncated: np.ndarray = field(metadata=INT_COLUMN)
    digest: np.ndarray = field(metadata=column(np.uint64, 0, width=2))


@dataclass(frozen=True)
class PosterPartial:
    """Outcomes of a set of videos, all of whose rows were scored together.

    Attributes:
        videos: the per-video outcomes (codes of the set are positions in it).
        embedding_dim: the vectors' length D, or None when matching is time-only.
        sweep_hits: (n_tau, n_theta, K) int64: eligible videos of the set that hit within k
            frames at (tau, theta) (`sweep_hit_counts`); None = no sweep.
        pool: the eligible videos' `evaluator.core.calibration.ExpertPool` (codes: positions
            in ``videos``), or None when matching is time-only or it was not asked for.
    """

    videos: VideoOutcomes
    embedding_dim: int | None
    sweep_hits: np.ndarray | None
    pool: ExpertPool | None = None

    def __len__(self) -> int:
        return len(self.videos)


def _matched_frames(
    experts: Frames, model: Frames, settings: PosterSettings, center: np.ndarray | None
) -> tuple[Frames, Frames]:
    """The frames as the rule sees them: vectors centred, or dropped when time-only."""
    if settings.min_cosine is None:
        experts = Frames(experts.video, experts.timestamp, None, None, experts.row_key)
        return experts, Frames(model.video, model.timestamp, None, model.rank, None)
    if experts.embedding is None or model.embedding is None:
        raise ValueError("min_cosine is set, so both tables need embeddings")
    if experts.embedding.shape[1] != model.embedding.shape[1]:
        raise ValueError(
            f"embedding lengths differ: experts {experts.embedding.shape[1]}, "
            f"predictions {model.embedding.shape[1]}"
        )
    if center is not None:
        experts = replace(experts, embedding=centred(experts.embedding, center))
        model = replace(model, embedding=centred(model.embedding, center))
    return experts, model


def score_set(
    experts: Frames,
    model: Frames,
    settings: PosterSettings,
    *,
    video_ids: np.ndarray,
    order_key: np.ndarray | None = None,
    center: np.ndarray | None = None,
    identify: bool = True,
    on_block: Callable[[PairBlock], None] | None = None,
) -> PosterPartial:
    """Score all rows of a set of videos (docs/metrics.md#the-match-rule): its partial.

    Steps: drop exact duplicate expert rows; a video with >= min_expert_frames expert frames is
    eligible; model frames of videos without expert frames are ignored and counted; model
    frames are taken in rank order and only the first k_max count; every pair of an eligible
    video is tested with the match rule.

    Args:
        experts: expert frames (``rank`` unused); codes index ``video_ids``.
        model: model frames with ``rank`` set.
        settings: thresholds and cut-offs.
        video_ids: id per video code (``0 .. len(video_ids) - 1``); all rows of each video
            are in the frames.
        order_key: canonical position per code (`VideoOutcomes.order_key`); default the code.
        center: the mean subtracted from every vector before the cosine, or None. The digest
            and the expert pool keep the vectors as given.
        identify: also hash each eligible video's rows (`VideoOutcomes.digest`) and keep the
            expert pool (with vectors).
        on_block: handed every block of tested pairs (`evaluator.core.matching.match_videos`).

    Returns:
        The set's partial.

    Raises:
        ValueError: when embeddings are needed but missing, or have different lengths, or
            model frames have no ranks.
    """
    n = int(video_ids.shape[0])
    matched_experts, matched_model = _matched_frames(experts, model, settings, center)
    if model.rank is None:
        raise ValueError("model frames need ranks")
    drop = exact_duplicate_mask(matched_experts)
    exp_grouped, mod_grouped, all_model, truncated_rows = group_for_matching(
        matched_experts, matched_model, n, ~drop, settings.k_max
    )
    eligible = exp_grouped.count >= settings.min_expert_frames
    time_only = settings.min_cosine is None
    matched = match_videos(
        exp_grouped,
        mod_grouped,
        np.flatnonzero(eligible),
        time_tolerance_s=settings.time_tolerance_s,
        min_cosine=settings.min_cosine,
        k_max=settings.k_max,
        sweep_time_tolerances_s=settings.sweep_time_tolerances_s,
        candidate_cosines=not time_only,
        on_block=on_block,
    )
    sweep_hits = None
    if matched.sweep_best is not None:
        thetas = None if time_only else settings.sweep_min_cosines
        sweep_hits = sweep_hit_counts(matched.sweep_best, thetas)
    vectors = None if time_only else experts.embedding
    scored = ~drop & eligible[experts.video]
    digest = np.zeros((n, 2), dtype=np.uint64)
    pool = None
    if identify:
        kept_vectors = None if vectors is None else vectors[scored]
        digest = video_digests(experts.video[scored], experts.timestamp[scored], kept_vectors, n)
        if vectors is not None and matched.candidate_counts is not None:
            in_pool = scored & vector_rows(vectors)
            pool = ExpertPool(experts.video[in_pool], vectors[in_pool], matched.candidate_counts)
    videos = VideoOutcomes(
        **{name: getattr(matched.columns, name) for name in MATCH_FIELDS},
        video_id=np.asarray(video_ids, dtype=object),
        order_key=np.arange(n, dtype=np.int64) if order_key is None else order_key,
        n_expert_frames=exp_grouped.count.astype(np.int64),
        n_expert_duplicates=np.bincount(experts.video[drop], minlength=n).astype(np.int64),
        n_prediction_rows=all_model.count.astype(np.int64),
        n_model_frames=mod_grouped.count.astype(np.int64),
        n_model_frames_truncated=np.bincount(all_model.video[truncated_rows], minlength=n),
        digest=digest,
    )
    dim = None if vectors is None else int(vectors.shape[1])
    return PosterPartial(videos, dim, sweep_hits, pool)


def poster_result(
    videos: VideoOutcomes, sweep_hits: np.ndarray | None, settings: PosterSettings
) -> PosterResult:
    """The metrics and the sweep of every video of an evaluation, from their outcomes.

    The one place both are assembled: `evaluate_poster` and the engines' merged partials
    (`evaluator.core.partials.finish`) come here.

    Args:
        videos: the outcomes of every video, in the canonical order (codes are positions;
            means are summed in this order).
        sweep_hits: the sweep's hit counts over the eligible videos, or None.
        settings: the settings the videos were scored with.

    Returns:
        The result.
    """
    n_expert, n_model = videos.n_expert_frames, videos.n_model_frames
    eligible = n_expert >= settings.min_expert_frames
    scored = np.flatnonzero(eligible)
    matches = VideoMatches(
        videos=scored, **{name: getattr(videos, name)[scored] for name in MATCH_FIELDS}
    )
    counts = input_counts(
        n_expert > 0,
        eligible,
        videos.n_prediction_rows > 0,
        videos.n_model_frames_truncated,
        videos.n_expert_duplicates,
    )
    metrics, curve = poster_metrics(settings, matches, n_expert[scored], n_model[scored], counts)
    sweep = None
    if sweep_hits is not None:
        thetas = None if settings.min_cosine is None else settings.sweep_min_cosines
        # recall = hits / eligible videos (the mean of the hit indicator); NaN when none.
        n = scored.shape[0]
        recall = sweep_hits / n if n else np.full(sweep_hits.shape, np.nan)
        taus = np.asarray(settings.sweep_time_tolerances_s, dtype=np.float64)
        sweep = SweepResult(taus, sweep_thetas(thetas), recall)
    n_videos, truncated = len(videos), videos.n_model_frames_truncated
    return PosterResult(
        settings, metrics, curve, n_videos, eligible, n_expert, n_model, truncated, matches, sweep
    )


def evaluate_poster(
    experts: Frames, model: Frames, n_videos: int, settings: PosterSettings
) -> PosterResult:
    """Score model frames against expert frames (docs/metrics.md#the-match-rule, #poster-metrics).

    `score_set` over all videos, then `poster_result`: the route every engine takes, with one
    set. Metrics over the N eligible videos, with K = k_max and r_v the rank of the first hit:
        recall_at_k = (1/N) sum_v [r_v <= k];  mrr_at_K = (1/N) sum_v 1/r_v (0 for a miss);
        precision_at_K = (1/N) sum_v matched model frames / considered model frames (0 when
        the video has none); expert_coverage_at_K = (1/N) sum_v matched expert frames /
        expert frames.

    Args:
        experts: expert frames (``rank`` unused).
        model: model frames with ``rank`` set.
        n_videos: number of video codes; codes index ``0 .. n_videos - 1``.
        settings: thresholds and cut-offs.

    Returns:
        A PosterResult.

    Raises:
        ValueError: when embeddings are needed but missing, or have different lengths.
    """
    ids = np.arange(n_videos, dtype=np.int64)
    partial = score_set(experts, model, settings, video_ids=ids, identify=False)
    return poster_result(partial.videos, partial.sweep_hits, settings)
