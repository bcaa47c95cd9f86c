"""The automation trade-off of episode verification: coverage against auto-decision accuracy.

At a confidence threshold t the model decides alone when ``confidence >= t`` (see
`evaluator.core.episode`); these functions score one threshold, the whole risk-coverage curve,
and the largest coverage that reaches a target accuracy, with its bootstrap interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from evaluator.core.bootstrap import (
    check_confidence,
    check_resample_args,
    iter_resample_counts,
    percentile_interval,
)
from evaluator.core.episode_inputs import (
    AUTO_ACCEPT,
    AUTO_FLAG,
    HUMAN_REVIEW,
    Videos,
    check_target,
    check_threshold,
    episode_videos,
    ratio,
)


@dataclass(frozen=True, eq=False)
class Automation:
    """What the model decides alone at one confidence threshold.

    Attributes:
        threshold: The threshold t; a video is decided alone when confidence >= t.
        decisions: Per video ``"auto_accept"``, ``"auto_flag"`` or ``"human_review"``.
        decision_correct: Per video, whether the model's flag agrees with the truth
            (flag == mismatch); defined for every video, automated or not.
        coverage: n_auto / n, the share decided alone.
        auto_accuracy: Share of the automated decisions that are right; NaN when
            coverage is 0 (no automated decision to score).
        n_auto: Number of videos decided alone.
        n_missed_mismatches_auto_accepted: auto_accept where true != metadata.
        n_false_flags_auto: auto_flag where true == metadata.
    """

    threshold: float
    decisions: np.ndarray
    decision_correct: np.ndarray
    coverage: float
    auto_accuracy: float
    n_auto: int
    n_missed_mismatches_auto_accepted: int
    n_false_flags_auto: int


def automation_at_threshold(
    metadata_episode: np.ndarray,
    predicted_episode: np.ndarray,
    true_episode: np.ndarray,
    confidence: np.ndarray,
    *,
    threshold: float,
) -> Automation:
    """Automated decisions at a confidence threshold and how good they are.

    auto = ``confidence >= threshold`` (ties at the threshold are decided alone).
    ``coverage = mean(auto)``; ``auto_accuracy = sum(auto & right) / sum(auto)`` with
    right = ``(predicted != metadata) == (true != metadata)``, NaN when no video is automated;
    ``n_missed_mismatches_auto_accepted = sum(auto & ~flag & mismatch)``;
    ``n_false_flags_auto = sum(auto & flag & ~mismatch)``.

    Args:
        metadata_episode: Episode numbers in the metadata, shape (n,).
        predicted_episode: Predicted episode numbers, shape (n,).
        true_episode: Verified episode numbers, shape (n,).
        confidence: Model confidence per video in [0, 1], shape (n,).
        threshold: Confidence at or above which the model decides alone (any number;
            above 1 automates nothing, 0 or below automates everything).

    Returns:
        An :class:`Automation`.

    Raises:
        ValueError: If the inputs are empty, misaligned, not integers / not in [0, 1], or
            the threshold is NaN.
    """
    v = episode_videos(metadata_episode, predicted_episode, true_episode, confidence)
    return videos_automation(v, check_threshold(threshold))


def videos_automation(v: Videos, threshold: float) -> Automation:
    auto = v.confidence >= threshold
    right = v.flag_right
    decisions = np.where(auto, np.where(v.flag, AUTO_FLAG, AUTO_ACCEPT), HUMAN_REVIEW)
    n_auto = int(auto.sum())
    return Automation(
        threshold=threshold,
        decisions=decisions,
        decision_correct=right,
        coverage=n_auto / v.n,
        auto_accuracy=float(ratio(np.sum(auto & right), n_auto, math.nan)),
        n_auto=n_auto,
        n_missed_mismatches_auto_accepted=int(np.sum(auto & ~v.flag & v.mismatch)),
        n_false_flags_auto=int(np.sum(auto & v.flag & ~v.mismatch)),
    )


# --------------------------------------------------------------------------- the trade-off


@dataclass(frozen=True, eq=False)
class RiskCoverageCurve:
    """Automation at every distinct confidence used as the threshold, highest first.

    Point j uses threshold ``threshold[j]`` (the j-th largest distinct confidence) and
    automates every video with confidence >= it, so coverage rises with j and the last
    point (lowest threshold) has coverage 1. All arrays have shape (number of distinct
    confidences,).

    Attributes:
        threshold: The distinct confidences, descending.
        coverage: n_auto / n.
        auto_accuracy: (n_auto - n_errors) / n_auto (n_auto >= 1 at every point).
        n_auto: Videos decided alone.
        n_errors: Automated decisions that are wrong.
        n_missed_mismatches_auto_accepted: auto_accept where true != metadata.
        n_false_flags_auto: auto_flag where true == metadata.
    """

    threshold: np.ndarray
    coverage: np.ndarray
    auto_accuracy: np.ndarray
    n_auto: np.ndarray
    n_errors: np.ndarray
    n_missed_mismatches_auto_accepted: np.ndarray
    n_false_flags_auto: np.ndarray


def _sorted_groups(confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Descending order of the videos and the last sorted position of each distinct value."""
    order = np.argsort(confidence, kind="stable")[::-1]
    sorted_conf = confidence[order]
    ends = np.flatnonzero(np.append(sorted_conf[1:] != sorted_conf[:-1], True))
    return order, ends


def risk_coverage_curve(
    metadata_episode: np.ndarray,
    predicted_episode: np.ndarray,
    true_episode: np.ndarray,
    confidence: np.ndarray,
) -> RiskCoverageCurve:
    """Coverage against auto-decision accuracy as the threshold moves down.

    Videos are sorted by confidence, descending; with ``e`` the last sorted position of the
    videos whose confidence equals threshold c (all tied videos enter together):
    ``n_auto(c) = e + 1``, ``n_errors(c) = cumsum(~right)[e]``, ``coverage = n_auto / n``,
    ``auto_accuracy = 1 - n_errors / n_auto``, and the two error kinds are cumulative sums of
    ``~flag & mismatch`` and ``flag & ~mismatch``.

    Args:
        metadata_episode: Episode numbers in the metadata, shape (n,).
        predicted_episode: Predicted episode numbers, shape (n,).
        true_episode: Verified episode numbers, shape (n,).
        confidence: Model confidence per video in [0, 1], shape (n,).

    Returns:
        A :class:`RiskCoverageCurve`.

    Raises:
        ValueError: If the inputs are empty, misaligned or out of range.
    """
    v = episode_videos(metadata_episode, predicted_episode, true_episode, confidence)
    return videos_curve(v)


def videos_curve(v: Videos) -> RiskCoverageCurve:
    order, ends = _sorted_groups(v.confidence)
    n_auto = ends + 1
    n_errors = np.cumsum(~v.flag_right[order])[ends]
    missed = np.cumsum((~v.flag & v.mismatch)[order])[ends]
    false_flags = np.cumsum((v.flag & ~v.mismatch)[order])[ends]
    return RiskCoverageCurve(
        threshold=v.confidence[order][ends],
        coverage=n_auto / v.n,
        auto_accuracy=(n_auto - n_errors) / n_auto,
        n_auto=n_auto.astype(np.int64),
        n_errors=n_errors.astype(np.int64),
        n_missed_mismatches_auto_accepted=missed.astype(np.int64),
        n_false_flags_auto=false_flags.astype(np.int64),
    )


def curve_at_thresholds(curve: RiskCoverageCurve, thresholds: np.ndarray) -> RiskCoverageCurve:
    """Read the risk-coverage curve at given thresholds (e.g. a fixed grid shared by runs).

    At threshold t the automated videos are those with confidence >= t, i.e. the curve point
    with the smallest curve threshold >= t; every value equals what
    :func:`automation_at_threshold` reports at t. Where no confidence reaches t nothing is
    automated: coverage 0, auto_accuracy NaN, counts 0.

    Args:
        curve: A :class:`RiskCoverageCurve` (from :func:`risk_coverage_curve`).
        thresholds: The thresholds to read it at, shape (m,), in any order; not NaN.

    Returns:
        A :class:`RiskCoverageCurve` with one point per given threshold, in the given order
        (its ``threshold`` is the given thresholds).

    Raises:
        ValueError: If a threshold is NaN or the thresholds are not 1-D.

    Example:
        >>> c = risk_coverage_curve([1, 1, 1], [1, 2, 1], [1, 1, 2], [0.9, 0.5, 0.5])
        >>> at = curve_at_thresholds(c, np.array([1.0, 0.9, 0.6, 0.5]))
        >>> at.coverage.tolist(), at.n_errors.tolist()
        ([0.0, 0.3333333333333333, 0.3333333333333333, 1.0], [0, 0, 0, 2])
    """
    t = np.asarray(thresholds, dtype=np.float64)
    if t.ndim != 1:
        raise ValueError(f"thresholds must be a 1-D array, got shape {t.shape}")
    if np.isnan(t).any():
        raise ValueError("thresholds must not be NaN")
    # Curve thresholds descend; the number of them >= t is the index just past the point.
    k = np.searchsorted(-curve.threshold, -t, side="right")
    point = np.maximum(k - 1, 0)
    none = k == 0

    def take(values: np.ndarray, empty: float) -> np.ndarray:
        return np.where(none, empty, values[point])

    n = int(curve.n_auto[-1])
    n_auto = take(curve.n_auto, 0).astype(np.int64)
    return RiskCoverageCurve(
        threshold=t,
        coverage=n_auto / n,
        auto_accuracy=take(curve.auto_accuracy, math.nan),
        n_auto=n_auto,
        n_errors=take(curve.n_errors, 0).astype(np.int64),
        n_missed_mismatches_auto_accepted=take(curve.n_missed_mismatches_auto_accepted, 0).astype(
            np.int64
        ),
        n_false_flags_auto=take(curve.n_false_flags_auto, 0).astype(np.int64),
    )


@dataclass(frozen=True)
class CoverageAtAccuracy:
    """The largest coverage whose auto-decision accuracy reaches a target.

    Attributes:
        target: The target accuracy.
        coverage: Largest coverage over all thresholds with auto_accuracy >= target; 0.0
            when no threshold qualifies (only automating nothing meets the target).
        threshold: The threshold giving that coverage (the lowest confidence still decided
            alone); NaN when no threshold qualifies.
        auto_accuracy: The auto-decision accuracy at that threshold; NaN when none
            qualifies.
        n_auto: Videos decided alone at that threshold (0 when none qualifies).
        ci_low: Lower end of the percentile bootstrap interval of ``coverage``.
        ci_high: Upper end of that interval.
        ci_level: Two-sided level of the interval.
        n_resamples: Bootstrap resamples behind the interval.
    """

    target: float
    coverage: float
    threshold: float
    auto_accuracy: float
    n_auto: int
    ci_low: float
    ci_high: float
    ci_level: float
    n_resamples: int


def _best_coverage(
    cum_auto: np.ndarray, cum_right: np.ndarray, n: int, target: float
) -> tuple[np.ndarray, np.ndarray]:
    """Largest qualifying coverage along the last axis, and its index (-1 when none)."""
    accuracy = ratio(cum_right, cum_auto, -math.inf)
    qualifies = (cum_auto > 0) & (accuracy >= target)
    # Coverage rises along the last axis (weakly, under resampling), so the last
    # qualifying point holds the largest coverage.
    last = cum_auto.shape[-1] - 1 - np.argmax(qualifies[..., ::-1], axis=-1)
    index = np.where(qualifies.any(axis=-1), last, -1)
    coverage = np.where(
        index >= 0, np.take_along_axis(cum_auto, np.maximum(index, 0)[..., None], -1)[..., 0], 0
    )
    return coverage / n, index


def coverage_at_accuracy(
    metadata_episode: np.ndarray,
    predicted_episode: np.ndarray,
    true_episode: np.ndarray,
    confidence: np.ndarray,
    *,
    target: float = 0.99,
    n_resamples: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
) -> CoverageAtAccuracy:
    """Largest share of videos the model can decide alone at a target accuracy.

    ``coverage = max{coverage(t) : auto_accuracy(t) >= target}`` over the thresholds t of
    :func:`risk_coverage_curve` (0 when the set is empty). The interval resamples videos
    with ``resample_counts(n, n_resamples, seed)``: for resample r, weighted cumulative sums
    of ``counts[r]`` and ``counts[r] * right`` over the confidence-sorted videos give every
    threshold's coverage and accuracy under that resample at once; the percentile interval
    is taken over the per-resample maxima.

    Args:
        metadata_episode: Episode numbers in the metadata, shape (n,).
        predicted_episode: Predicted episode numbers, shape (n,).
        true_episode: Verified episode numbers, shape (n,).
        confidence: Model confidence per video in [0, 1], shape (n,).
        target: Target auto-decision accuracy in (0, 1].
        n_resamples: Number of bootstrap resamples (>= 1).
        ci_level: Two-sided level of the interval, in (0, 1).
        seed: Seed for ``np.random.default_rng``.

    Returns:
        A :class:`CoverageAtAccuracy`.

    Raises:
        ValueError: If the inputs are empty, misaligned or out of range, or an argument is.
    """
    v = episode_videos(metadata_episode, predicted_episode, true_episode, confidence)
    return videos_coverage_at_accuracy(v, [check_target(target)], n_resamples, ci_level, seed)[0]


def videos_coverage_at_accuracy(
    v: Videos,
    targets: Sequence[float],
    n_resamples: int,
    ci_level: float,
    seed: int,
    between_blocks: Callable[[], None] | None = None,
) -> tuple[CoverageAtAccuracy, ...]:
    """coverage_at_accuracy for several targets from one pass over the same resamples."""
    level = check_confidence(ci_level, "ci_level")
    check_resample_args(v.n, n_resamples, seed)
    order, ends = _sorted_groups(v.confidence)
    right_sorted = v.flag_right[order]
    cum_auto = (ends + 1).astype(np.int64)
    cum_right = np.cumsum(right_sorted)[ends]
    sampled = np.empty((len(targets), n_resamples), dtype=np.float64)
    start = 0
    for counts in iter_resample_counts(v.n, n_resamples, seed):
        if between_blocks is not None:
            between_blocks()
        weights = counts[:, order]
        w_auto = np.cumsum(weights, axis=1)[:, ends]
        w_right = np.cumsum(weights * right_sorted, axis=1)[:, ends]
        stop = start + len(counts)
        for j, target in enumerate(targets):
            sampled[j, start:stop] = _best_coverage(w_auto, w_right, v.n, target)[0]
        start = stop
    results = []
    for j, target in enumerate(targets):
        coverage, index = _best_coverage(cum_auto, cum_right, v.n, target)
        i = int(index)
        low, high = percentile_interval(sampled[j], level)
        results.append(
            CoverageAtAccuracy(
                target=target,
                coverage=float(coverage),
                threshold=float(v.confidence[order][ends[i]]) if i >= 0 else math.nan,
                auto_accuracy=float(cum_right[i] / cum_auto[i]) if i >= 0 else math.nan,
                n_auto=int(cum_auto[i]) if i >= 0 else 0,
                ci_low=float(low),
                ci_high=float(high),
                ci_level=level,
                n_resamples=n_resamples,
            )
        )
    return tuple(results)
