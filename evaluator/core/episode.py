"""Episode-verification metrics (SPEC section 8).

Per video there are four aligned values: the episode number in the metadata (or burned in),
the model's predicted episode number with its confidence in [0, 1], and the episode number
verified by human QC. Episode numbers are compared by exact equality.

- The model FLAGS a video when ``predicted != metadata``; the TRUTH is a mismatch when
  ``true != metadata``. Flagging is scored like a binary classifier (positive = mismatch).
- At a confidence threshold t the model decides alone when ``confidence >= t``: an
  ``auto_accept`` (not flagged) or an ``auto_flag`` (flagged); below t the video goes to
  ``human_review``. An automated decision is right when ``flag == truth``: an auto_accept is
  right iff ``metadata == true`` and an auto_flag is right iff ``metadata != true`` (so a
  video with ``predicted == metadata != true`` that is auto-accepted is a missed mismatch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evaluator.core.bootstrap import (
    check_confidence,
    check_resample_args,
    iter_resample_counts,
    percentile_interval,
)

__all__ = [
    "AUTO_ACCEPT",
    "AUTO_FLAG",
    "HUMAN_REVIEW",
    "Automation",
    "CoverageAtAccuracy",
    "EpisodeResult",
    "GroupBreakdown",
    "MismatchScores",
    "RiskCoverageCurve",
    "accuracy_metric_suffix",
    "automation_at_threshold",
    "coverage_at_accuracy",
    "curve_at_thresholds",
    "episode_accuracy",
    "evaluate_episodes",
    "group_breakdown",
    "mismatch_scores",
    "risk_coverage_curve",
]

AUTO_ACCEPT = "auto_accept"
AUTO_FLAG = "auto_flag"
HUMAN_REVIEW = "human_review"

_EPISODE_ARGS = ("metadata_episode", "predicted_episode", "true_episode")


# --------------------------------------------------------------------------- validation


def _episode_array(name: str, values: np.ndarray) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array (one value per video), got shape {arr.shape}")
    if arr.dtype.kind in "iu":
        return arr
    if arr.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(arr) | (arr != np.round(arr)))
        if bad.size:
            raise ValueError(
                f"{name} must hold integer episode numbers; rows {bad[:5].tolist()} hold "
                f"{arr[bad[:5]].tolist()}"
            )
        return arr
    raise ValueError(f"{name} must hold integer episode numbers, got dtype {arr.dtype}")


def _confidence_array(values: np.ndarray) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"confidence must be a 1-D array (one value per video), got {arr.shape}")
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"confidence must be numeric in [0, 1], got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    bad = np.flatnonzero(~((arr >= 0.0) & (arr <= 1.0)))  # also catches NaN
    if bad.size:
        raise ValueError(
            f"confidence must be in [0, 1]; rows {bad[:5].tolist()} hold {arr[bad[:5]].tolist()}"
        )
    return arr


@dataclass(frozen=True, eq=False)
class _Videos:
    """Validated per-video inputs and the derived boolean columns."""

    confidence: np.ndarray
    episode_correct: np.ndarray  # predicted == true
    flag: np.ndarray  # predicted != metadata
    mismatch: np.ndarray  # true != metadata

    @property
    def n(self) -> int:
        return len(self.flag)

    @property
    def flag_right(self) -> np.ndarray:
        return self.flag == self.mismatch


def _videos(
    metadata_episode: np.ndarray,
    predicted_episode: np.ndarray,
    true_episode: np.ndarray,
    confidence: np.ndarray | None,
) -> _Videos:
    meta, pred, true = (
        _episode_array(name, arr)
        for name, arr in zip(
            _EPISODE_ARGS, (metadata_episode, predicted_episode, true_episode), strict=True
        )
    )
    conf = np.ones(len(meta)) if confidence is None else _confidence_array(confidence)
    lengths = [len(meta), len(pred), len(true), len(conf)]
    if len(set(lengths)) != 1:
        raise ValueError(
            "metadata_episode, predicted_episode, true_episode and confidence must have one "
            f"value per video (the same length), got lengths {lengths}"
        )
    if lengths[0] == 0:
        raise ValueError("no videos: the episode inputs are empty")
    return _Videos(conf, pred == true, pred != meta, true != meta)


def _check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.number):
        raise ValueError(f"threshold must be a number, got {threshold!r}")
    value = float(threshold)
    if math.isnan(value):
        raise ValueError("threshold must not be NaN")
    return value


def _check_target(target: float) -> float:
    if isinstance(target, bool) or not isinstance(target, int | float | np.number):
        raise ValueError(f"target accuracy must be a number in (0, 1], got {target!r}")
    value = float(target)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"target accuracy must be in (0, 1], got {target!r}")
    return value


def _ratio(num: np.ndarray | float, den: np.ndarray | float, empty: float) -> np.ndarray:
    """num / den elementwise, ``empty`` where den == 0."""
    num_a = np.asarray(num, dtype=np.float64)
    den_a = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num_a, den_a).shape, empty, dtype=np.float64)
    np.divide(num_a, den_a, out=out, where=den_a != 0)
    return out


# --------------------------------------------------------------------------- point metrics


def episode_accuracy(predicted_episode: np.ndarray, true_episode: np.ndarray) -> float:
    """Share of videos whose predicted episode number is the verified one.

    ``episode_accuracy = mean(predicted == true)``.

    Args:
        predicted_episode: Predicted episode numbers, shape (n,).
        true_episode: Verified episode numbers, shape (n,).

    Returns:
        The accuracy in [0, 1].

    Raises:
        ValueError: If the arrays are empty, differ in length or do not hold integers.
    """
    videos = _videos(true_episode, predicted_episode, true_episode, None)
    return float(videos.episode_correct.mean())


@dataclass(frozen=True, eq=False)
class MismatchScores:
    """Flagging a metadata mismatch, scored as a binary classifier (positive = mismatch).

    Attributes:
        precision: TP / (TP + FP); 0.0 when nothing is flagged.
        recall: TP / (TP + FN); 0.0 when there is no true mismatch.
        f1: 2 TP / (2 TP + FP + FN); 0.0 when TP + FP + FN = 0.
        confusion: int64 (2, 2) array ``[[TN, FP], [FN, TP]]``, rows = truth (no mismatch,
            mismatch), columns = flag (not flagged, flagged).
    """

    precision: float
    recall: float
    f1: float
    confusion: np.ndarray


def mismatch_scores(
    metadata_episode: np.ndarray, predicted_episode: np.ndarray, true_episode: np.ndarray
) -> MismatchScores:
    """Precision, recall, F1 and confusion of flagging metadata mismatches.

    flag = ``predicted != metadata``, truth = ``true != metadata``. TP = flag & truth,
    FP = flag & ~truth, FN = ~flag & truth, TN = ~flag & ~truth. The 0/0 cases follow
    scikit-learn's ``zero_division=0``: precision 0 with no flags, recall 0 with no true
    mismatch, F1 0 when TP + FP + FN = 0. The confusion equals scikit-learn's
    ``confusion_matrix(truth, flag, labels=[False, True])``.

    Args:
        metadata_episode: Episode numbers in the metadata, shape (n,).
        predicted_episode: Predicted episode numbers, shape (n,).
        true_episode: Verified episode numbers, shape (n,).

    Returns:
        A :class:`MismatchScores`.

    Raises:
        ValueError: If the arrays are empty, differ in length or do not hold integers.
    """
    v = _videos(metadata_episode, predicted_episode, true_episode, None)
    return _mismatch_scores(v.flag, v.mismatch)


def _mismatch_scores(flag: np.ndarray, mismatch: np.ndarray) -> MismatchScores:
    # Code 2 * truth + flag indexes the flattened [[TN, FP], [FN, TP]].
    codes = 2 * mismatch.astype(np.int64) + flag.astype(np.int64)
    confusion = np.bincount(codes, minlength=4).reshape(2, 2)
    tp, fp, fn = int(confusion[1, 1]), int(confusion[0, 1]), int(confusion[1, 0])
    return MismatchScores(
        precision=float(_ratio(tp, tp + fp, 0.0)),
        recall=float(_ratio(tp, tp + fn, 0.0)),
        f1=float(_ratio(2 * tp, 2 * tp + fp + fn, 0.0)),
        confusion=confusion,
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
    v = _videos(metadata_episode, predicted_episode, true_episode, confidence)
    return _automation(v, _check_threshold(threshold))


def _automation(v: _Videos, threshold: float) -> Automation:
    auto = v.confidence >= threshold
    right = v.flag_right
    decisions = np.where(auto, np.where(v.flag, AUTO_FLAG, AUTO_ACCEPT), HUMAN_REVIEW)
    n_auto = int(auto.sum())
    return Automation(
        threshold=threshold,
        decisions=decisions,
        decision_correct=right,
        coverage=n_auto / v.n,
        auto_accuracy=float(_ratio(np.sum(auto & right), n_auto, math.nan)),
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
    v = _videos(metadata_episode, predicted_episode, true_episode, confidence)
    return _curve(v)


def _curve(v: _Videos) -> RiskCoverageCurve:
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
    accuracy = _ratio(cum_right, cum_auto, -math.inf)
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
    v = _videos(metadata_episode, predicted_episode, true_episode, confidence)
    return _coverage_at_accuracy(v, [_check_target(target)], n_resamples, ci_level, seed)[0]


def _coverage_at_accuracy(
    v: _Videos, targets: Sequence[float], n_resamples: int, ci_level: float, seed: int
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


# --------------------------------------------------------------------------- per group


@dataclass(frozen=True, eq=False)
class GroupBreakdown:
    """Episode metrics per group (e.g. per series), one entry per distinct group, sorted.

    Attributes:
        group: The distinct group values, sorted (``np.unique`` order).
        n_videos: Videos in the group.
        episode_accuracy: mean(predicted == true) in the group.
        mismatch_precision: TP / (TP + FP) in the group; 0.0 when nothing is flagged.
        mismatch_recall: TP / (TP + FN) in the group; 0.0 when there is no true mismatch.
        coverage: Share of the group decided alone at the threshold.
        auto_accuracy: Share of the group's automated decisions that are right; NaN when
            none of its videos is automated.
    """

    group: np.ndarray
    n_videos: np.ndarray
    episode_accuracy: np.ndarray
    mismatch_precision: np.ndarray
    mismatch_recall: np.ndarray
    coverage: np.ndarray
    auto_accuracy: np.ndarray

    def columns(self) -> dict[str, np.ndarray]:
        """The breakdown as named columns (e.g. for ``pandas.DataFrame``).

        Returns:
            Column name -> array, in the attribute order.
        """
        return {
            "group": self.group,
            "n_videos": self.n_videos,
            "episode_accuracy": self.episode_accuracy,
            "mismatch_precision": self.mismatch_precision,
            "mismatch_recall": self.mismatch_recall,
            "coverage": self.coverage,
            "auto_accuracy": self.auto_accuracy,
        }


def group_breakdown(
    metadata_episode: np.ndarray,
    predicted_episode: np.ndarray,
    true_episode: np.ndarray,
    confidence: np.ndarray,
    groups: np.ndarray,
    *,
    threshold: float,
) -> GroupBreakdown:
    """Episode metrics per group, with the same definitions as for the whole set.

    Per group g, with sums over its videos: ``episode_accuracy = sum(correct) / n_g``,
    ``mismatch_precision = TP / (TP + FP)`` (0 if no flag), ``mismatch_recall =
    TP / (TP + FN)`` (0 if no true mismatch), ``coverage = sum(auto) / n_g``,
    ``auto_accuracy = sum(auto & right) / sum(auto)`` (NaN if nothing automated).

    Args:
        metadata_episode: Episode numbers in the metadata, shape (n,).
        predicted_episode: Predicted episode numbers, shape (n,).
        true_episode: Verified episode numbers, shape (n,).
        confidence: Model confidence per video in [0, 1], shape (n,).
        groups: Group label per video (e.g. series_id), shape (n,); any sortable dtype.
        threshold: Confidence at or above which the model decides alone.

    Returns:
        A :class:`GroupBreakdown`.

    Raises:
        ValueError: If the inputs are empty, misaligned or out of range, or the group labels
            cannot be sorted.
    """
    v = _videos(metadata_episode, predicted_episode, true_episode, confidence)
    return _group_breakdown(v, groups, _check_threshold(threshold))


def _group_breakdown(v: _Videos, groups: np.ndarray, threshold: float) -> GroupBreakdown:
    labels = np.asarray(groups)
    if labels.shape != (v.n,):
        raise ValueError(
            f"groups must have one value per video, shape ({v.n},), got shape {labels.shape}"
        )
    try:
        unique, inverse = np.unique(labels, return_inverse=True)
    except TypeError as err:
        raise ValueError(f"groups must hold sortable labels of one type: {err}") from err
    inverse = inverse.reshape(-1)
    k = len(unique)

    def total(mask: np.ndarray) -> np.ndarray:
        return np.bincount(inverse, weights=mask.astype(np.float64), minlength=k)

    auto = v.confidence >= threshold
    size = np.bincount(inverse, minlength=k)
    tp = total(v.flag & v.mismatch)
    n_auto = total(auto)
    return GroupBreakdown(
        group=unique,
        n_videos=size.astype(np.int64),
        episode_accuracy=total(v.episode_correct) / size,
        mismatch_precision=_ratio(tp, total(v.flag), 0.0),
        mismatch_recall=_ratio(tp, total(v.mismatch), 0.0),
        coverage=n_auto / size,
        auto_accuracy=_ratio(total(auto & v.flag_right), n_auto, math.nan),
    )


# --------------------------------------------------------------------------- everything


def accuracy_metric_suffix(target: float) -> str:
    """How a target accuracy appears in metric names: 0.99 -> ``"0.99"``, 0.9 -> ``"0.9"``.

    Args:
        target: The target accuracy.

    Returns:
        The shortest decimal that reads back as ``target``, without trailing zeros.
    """
    return np.format_float_positional(float(target), trim="-")


@dataclass(frozen=True, eq=False)
class EpisodeResult:
    """Everything the episode evaluation reports.

    Attributes:
        metrics: Name -> value, with exactly these names: ``episode_accuracy``,
            ``mismatch_precision``, ``mismatch_recall``, ``mismatch_f1``, ``coverage``,
            ``auto_accuracy``, ``n_missed_mismatches_auto_accepted``, ``n_false_flags_auto``,
            ``n_videos``, and for each target p (formatted by
            :func:`accuracy_metric_suffix`): ``coverage_at_accuracy_{p}``,
            ``coverage_at_accuracy_{p}_threshold``, ``coverage_at_accuracy_{p}_ci_low``,
            ``coverage_at_accuracy_{p}_ci_high``.
        threshold: The confidence threshold of the automated decisions.
        decisions: Per video ``"auto_accept"``, ``"auto_flag"`` or ``"human_review"``.
        decision_correct: Per video, flag == truth (whether the model's accept / flag call
            is right, for every video).
        episode_correct: Per video, predicted == true.
        confusion: ``[[TN, FP], [FN, TP]]`` of flag against truth.
        curve: The :class:`RiskCoverageCurve`.
        coverage_at_accuracy: One :class:`CoverageAtAccuracy` per target, in the given order.
        groups: The :class:`GroupBreakdown`, or None without groups.
    """

    metrics: dict[str, float]
    threshold: float
    decisions: np.ndarray
    decision_correct: np.ndarray
    episode_correct: np.ndarray
    confusion: np.ndarray
    curve: RiskCoverageCurve
    coverage_at_accuracy: tuple[CoverageAtAccuracy, ...]
    groups: GroupBreakdown | None


def evaluate_episodes(
    metadata_episode: np.ndarray,
    predicted_episode: np.ndarray,
    true_episode: np.ndarray,
    confidence: np.ndarray,
    *,
    threshold: float,
    target_accuracies: Sequence[float] = (0.99,),
    groups: np.ndarray | None = None,
    n_resamples: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
) -> EpisodeResult:
    """Evaluate an episode-verification model (SPEC section 8).

    Combines :func:`episode_accuracy`, :func:`mismatch_scores`,
    :func:`automation_at_threshold`, :func:`risk_coverage_curve`,
    :func:`coverage_at_accuracy` (one per target, all with the same resamples) and, with
    ``groups``, :func:`group_breakdown`; see those for the formulas.

    Args:
        metadata_episode: Episode numbers in the metadata (or burned in), shape (n,).
        predicted_episode: Predicted episode numbers, shape (n,).
        true_episode: Episode numbers verified by human QC, shape (n,).
        confidence: Model confidence per video in [0, 1], shape (n,).
        threshold: Confidence at or above which the model decides alone.
        target_accuracies: Targets p in (0, 1] for ``coverage_at_accuracy_{p}``; distinct
            after formatting.
        groups: Optional group label per video (e.g. series_id) for a per-group breakdown.
        n_resamples: Bootstrap resamples for the coverage intervals.
        ci_level: Two-sided level of the coverage intervals.
        seed: Seed for ``np.random.default_rng``.

    Returns:
        An :class:`EpisodeResult`.

    Raises:
        ValueError: If the inputs are empty, misaligned or out of range, or an argument is.

    Example:
        >>> r = evaluate_episodes([1, 2, 3, 4], [1, 2, 9, 4], [1, 2, 3, 5],
        ...                       [0.9, 0.8, 0.95, 0.3], threshold=0.5, n_resamples=50)
        >>> r.decisions.tolist()
        ['auto_accept', 'auto_accept', 'auto_flag', 'human_review']
        >>> r.metrics["coverage"], r.metrics["auto_accuracy"], r.metrics["n_false_flags_auto"]
        (0.75, 0.6666666666666666, 1.0)
    """
    v = _videos(metadata_episode, predicted_episode, true_episode, confidence)
    t = _check_threshold(threshold)
    targets = [_check_target(p) for p in target_accuracies]
    suffixes = [accuracy_metric_suffix(p) for p in targets]
    if len(set(suffixes)) != len(suffixes):
        raise ValueError(f"target_accuracies must be distinct, got {list(target_accuracies)}")

    scores = _mismatch_scores(v.flag, v.mismatch)
    automation = _automation(v, t)
    at_accuracy = _coverage_at_accuracy(v, targets, n_resamples, ci_level, seed)
    metrics: dict[str, float] = {
        "episode_accuracy": float(v.episode_correct.mean()),
        "mismatch_precision": scores.precision,
        "mismatch_recall": scores.recall,
        "mismatch_f1": scores.f1,
        "coverage": automation.coverage,
        "auto_accuracy": automation.auto_accuracy,
        "n_missed_mismatches_auto_accepted": float(automation.n_missed_mismatches_auto_accepted),
        "n_false_flags_auto": float(automation.n_false_flags_auto),
        "n_videos": float(v.n),
    }
    for suffix, item in zip(suffixes, at_accuracy, strict=True):
        name = f"coverage_at_accuracy_{suffix}"
        metrics[name] = item.coverage
        metrics[f"{name}_threshold"] = item.threshold
        metrics[f"{name}_ci_low"] = item.ci_low
        metrics[f"{name}_ci_high"] = item.ci_high
    return EpisodeResult(
        metrics=metrics,
        threshold=t,
        decisions=automation.decisions,
        decision_correct=automation.decision_correct,
        episode_correct=v.episode_correct,
        confusion=scores.confusion,
        curve=_curve(v),
        coverage_at_accuracy=at_accuracy,
        groups=None if groups is None else _group_breakdown(v, groups, t),
    )
