"""Poster-frame evaluation: the test set, the match rule, every metric and the sweep.

See docs/metrics.md#the-match-rule, #poster-metrics and #the-threshold-sweep.

`evaluate_poster` is the one function that turns validated frames into numbers. It does no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evaluator.core.bounds import POSTER_BOUNDS, check_setting
from evaluator.core.candidates import candidate_window_s
from evaluator.core.frames import Frames, Grouped, exact_duplicate_mask, group_by_video
from evaluator.core.matching import VideoMatches, match_videos
from evaluator.core.sweep_defaults import (
    DEFAULT_SWEEP_MIN_COSINES,
)


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


def sweep_hit_counts(
    sweep_best: np.ndarray, min_cosines: Sequence[float] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per (tau, theta, k): how many videos hit within k frames (the mergeable sweep).

    A video hits within k frames at (tau, theta) iff the running maximum, over the first k
    ranks, of the best cosine among expert frames within tau is >= theta; the same comparisons
    a full evaluation makes, so every grid value equals a full evaluation's. Counts of disjoint
    video sets add up.

    Args:
        sweep_best: (n_tau, n_videos, K) from `match_videos`.
        min_cosines: the theta grid, or None for time-only matching.

    Returns:
        (thetas, counts): thetas (n_theta,) (a single NaN when time-only), int64 counts of
        shape (n_tau, n_theta, K).
    """
    if min_cosines is None:
        thetas = np.array([np.nan])
        hit = (sweep_best > -np.inf)[:, None]
    else:
        thetas = np.asarray(min_cosines, dtype=np.float64)
        hit = sweep_best[:, None, :, :] >= thetas[None, :, None, None]
    return thetas, hit.sum(axis=2, dtype=np.int64)


def sweep_recall_from_counts(counts: np.ndarray, n_videos: int) -> np.ndarray:
    """recall = counts / n_videos (the mean over videos of the hit indicator); NaN when none."""
    if n_videos == 0:
        return np.full(counts.shape, np.nan)
    return counts / n_videos


def sweep_recall(
    sweep_best: np.ndarray, min_cosines: Sequence[float] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Recall@k over the theta grid from the running best cosine per tau, video and rank.

    recall = `sweep_hit_counts` / number of videos, so every grid value equals a full
    evaluation's at that (tau, theta).

    Args:
        sweep_best: (n_tau, n_videos, K) from `match_videos`.
        min_cosines: the theta grid, or None for time-only matching.

    Returns:
        (thetas, recall) with recall of shape (n_tau, n_theta, K).
    """
    thetas, counts = sweep_hit_counts(sweep_best, min_cosines)
    return thetas, sweep_recall_from_counts(counts, sweep_best.shape[1])


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


def _scatter(values: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """An (n,) array with ``values`` placed at ``rows`` (back to original row order)."""
    out = np.zeros(n, dtype=values.dtype)
    out[rows] = values
    return out


def _group_frames(
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


def evaluate_poster(
    experts: Frames,
    model: Frames,
    n_videos: int,
    settings: PosterSettings,
    *,
    judge_frames: bool = False,
) -> PosterResult:
    """Score model frames against expert frames (docs/metrics.md#the-match-rule, #poster-metrics).

    Steps: drop exact duplicate expert rows; a video with >= min_expert_frames expert frames is
    eligible; model frames of videos without expert frames are ignored and counted; model
    frames are taken in rank order and only the first k_max count; every pair of an eligible
    video is tested with the match rule.

    Metrics over the N eligible videos, with K = k_max and r_v the rank of the first hit:
        recall_at_k = (1/N) sum_v [r_v <= k];  mrr_at_K = (1/N) sum_v 1/r_v (0 for a miss);
        precision_at_K = (1/N) sum_v matched model frames / considered model frames (0 when
        the video has none); expert_coverage_at_K = (1/N) sum_v matched expert frames /
        expert frames.

    Args:
        experts: expert frames (``rank`` unused).
        model: model frames with ``rank`` set.
        n_videos: number of video codes; codes index ``0 .. n_videos - 1``.
        settings: thresholds and cut-offs.
        judge_frames: also judge every model frame on its own (`result.matches.frames`, the
            report gallery's view), in the same pass over the pairs.

    Returns:
        A PosterResult.

    Raises:
        ValueError: when embeddings are needed but missing, or have different lengths.
    """
    k_max = settings.k_max
    if settings.min_cosine is not None:
        if experts.embedding is None or model.embedding is None:
            raise ValueError("min_cosine is set, so both tables need embeddings")
        if experts.embedding.shape[1] != model.embedding.shape[1]:
            raise ValueError(
                f"embedding lengths differ: experts {experts.embedding.shape[1]}, "
                f"predictions {model.embedding.shape[1]}"
            )
    else:
        experts = Frames(experts.video, experts.timestamp, None, None, experts.row_key)
        model = Frames(model.video, model.timestamp, None, model.rank, None)
    if model.rank is None:
        raise ValueError("model frames need ranks")

    drop = exact_duplicate_mask(experts)
    exp_grouped, mod_grouped, all_model, truncated_rows = _group_frames(
        experts, model, n_videos, ~drop, k_max
    )
    n_expert = exp_grouped.count
    eligible = n_expert >= settings.min_expert_frames
    has_experts = n_expert > 0
    n_model = mod_grouped.count
    n_truncated = np.bincount(all_model.video[truncated_rows], minlength=n_videos)
    n_prediction_videos = all_model.count > 0

    videos = np.flatnonzero(eligible)
    taus = settings.sweep_time_tolerances_s
    matches = match_videos(
        exp_grouped,
        mod_grouped,
        videos,
        time_tolerance_s=settings.time_tolerance_s,
        min_cosine=settings.min_cosine,
        k_max=k_max,
        sweep_time_tolerances_s=taus,
        judge_frames=judge_frames,
        candidate_cosines=settings.min_cosine is not None,
    )

    counts = input_counts(has_experts, eligible, n_prediction_videos, n_truncated, drop)
    metrics, curve = poster_metrics(settings, matches, n_expert[videos], n_model[videos], counts)

    sweep = None
    if matches.sweep_best is not None:
        thetas, recall = sweep_recall(
            matches.sweep_best,
            None if settings.min_cosine is None else settings.sweep_min_cosines,
        )
        sweep = SweepResult(np.asarray(taus, dtype=np.float64), thetas, recall)

    return PosterResult(
        settings=settings,
        metrics=metrics,
        recall_curve=curve,
        n_videos=n_videos,
        eligible=eligible,
        n_expert_frames=n_expert,
        n_model_frames=n_model,
        n_model_frames_truncated=n_truncated,
        matches=matches,
        sweep=sweep,
    )
