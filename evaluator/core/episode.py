"""Episode-verification metrics (docs/metrics.md#episode-verification-metrics).

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from evaluator.core.episode_coverage import (
    Automation,
    CoverageAtAccuracy,
    RiskCoverageCurve,
    automation_at_threshold,
    coverage_at_accuracy,
    curve_at_thresholds,
    risk_coverage_curve,
    videos_automation,
    videos_coverage_at_accuracy,
    videos_curve,
)
from evaluator.core.episode_inputs import (
    Videos,
    check_target,
    check_threshold,
    episode_videos,
    ratio,
)

__all__ = [
    "Automation",
    "CoverageAtAccuracy",
    "EpisodeResult",
    "GroupBreakdown",
    "GroupMetrics",
    "MismatchScores",
    "RiskCoverageCurve",
    "accuracy_metric_suffix",
    "automation_at_threshold",
    "coverage_at_accuracy",
    "curve_at_thresholds",
    "episode_accuracy",
    "evaluate_episodes",
    "group_breakdown",
    "group_metrics",
    "mismatch_scores",
    "risk_coverage_curve",
]


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
    videos = episode_videos(true_episode, predicted_episode, true_episode, None)
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
    v = episode_videos(metadata_episode, predicted_episode, true_episode, None)
    return _mismatch_scores(v.flag, v.mismatch)


def _mismatch_scores(flag: np.ndarray, mismatch: np.ndarray) -> MismatchScores:
    # Code 2 * truth + flag indexes the flattened [[TN, FP], [FN, TP]].
    codes = 2 * mismatch.astype(np.int64) + flag.astype(np.int64)
    confusion = np.bincount(codes, minlength=4).reshape(2, 2)
    tp, fp, fn = int(confusion[1, 1]), int(confusion[0, 1]), int(confusion[1, 0])
    return MismatchScores(
        precision=float(ratio(tp, tp + fp, 0.0)),
        recall=float(ratio(tp, tp + fn, 0.0)),
        f1=float(ratio(2 * tp, 2 * tp + fp + fn, 0.0)),
        confusion=confusion,
    )


# --------------------------------------------------------------------------- per group


@dataclass(frozen=True, eq=False)
class GroupMetrics:
    """Episode metrics per group of videos (a group label, a slice), with the definitions of
    the whole set applied inside each group; one entry per group.

    Attributes:
        n_videos: Videos in the group.
        episode_accuracy: mean(predicted == true) in the group.
        mismatch_precision: TP / (TP + FP) in the group; 0.0 when nothing is flagged.
        mismatch_recall: TP / (TP + FN) in the group; 0.0 when there is no true mismatch.
        coverage: Share of the group decided alone at the threshold.
        auto_accuracy: Share of the group's automated decisions that are right; NaN when
            none of its videos is automated.
    """

    n_videos: np.ndarray
    episode_accuracy: np.ndarray
    mismatch_precision: np.ndarray
    mismatch_recall: np.ndarray
    coverage: np.ndarray
    auto_accuracy: np.ndarray


def group_metrics(v: Videos, codes: np.ndarray, n_groups: int, threshold: float) -> GroupMetrics:
    """`GroupMetrics` of groups 0 .. n_groups - 1, all at once (``np.bincount`` over codes).

    Per group g, with sums over its videos: ``episode_accuracy = sum(correct) / n_g``,
    ``mismatch_precision = TP / (TP + FP)`` (0 if no flag), ``mismatch_recall =
    TP / (TP + FN)`` (0 if no true mismatch), ``coverage = sum(auto) / n_g``,
    ``auto_accuracy = sum(auto & right) / sum(auto)`` (NaN if nothing automated). A group
    without videos has NaN accuracy and coverage.

    Args:
        v: The validated per-video values.
        codes: Group code per video in [0, n_groups), shape (n,).
        n_groups: Number of groups.
        threshold: Confidence at or above which the model decides alone.
    """
    c = np.asarray(codes, dtype=np.int64)

    def total(mask: np.ndarray) -> np.ndarray:
        return np.bincount(c, weights=mask.astype(np.float64), minlength=n_groups)

    size = np.bincount(c, minlength=n_groups).astype(np.float64)
    auto = v.confidence >= threshold
    tp = total(v.flag & v.mismatch)
    n_auto = total(auto)
    with np.errstate(invalid="ignore", divide="ignore"):
        return GroupMetrics(
            n_videos=size.astype(np.int64),
            episode_accuracy=total(v.episode_correct) / size,
            mismatch_precision=ratio(tp, total(v.flag), 0.0),
            mismatch_recall=ratio(tp, total(v.mismatch), 0.0),
            coverage=n_auto / size,
            auto_accuracy=ratio(total(auto & v.flag_right), n_auto, math.nan),
        )


@dataclass(frozen=True, eq=False)
class GroupBreakdown(GroupMetrics):
    """Episode metrics per group (e.g. per series), one entry per distinct group, sorted.

    Attributes:
        group: The distinct group values, sorted (``np.unique`` order).
        n_videos / episode_accuracy / ... / auto_accuracy: per group, as in `GroupMetrics`.
    """

    group: np.ndarray

    def columns(self) -> dict[str, np.ndarray]:
        """The breakdown as named columns (e.g. for ``pandas.DataFrame``).

        Returns:
            Column name -> array: ``group``, then the metrics in `GroupMetrics` order.
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
    v = episode_videos(metadata_episode, predicted_episode, true_episode, confidence)
    return _group_breakdown(v, groups, check_threshold(threshold))


def _group_breakdown(v: Videos, groups: np.ndarray, threshold: float) -> GroupBreakdown:
    labels = np.asarray(groups)
    if labels.shape != (v.n,):
        raise ValueError(
            f"groups must have one value per video, shape ({v.n},), got shape {labels.shape}"
        )
    try:
        unique, inverse = np.unique(labels, return_inverse=True)
    except TypeError as err:
        raise ValueError(f"groups must hold sortable labels of one type: {err}") from err
    per_group = group_metrics(v, inverse.reshape(-1), len(unique), threshold)
    return GroupBreakdown(group=unique, **vars(per_group))


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
    between_blocks: Callable[[], None] | None = None,
) -> EpisodeResult:
    """Evaluate an episode-verification model (docs/metrics.md#episode-verification-metrics).

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
        between_blocks: Called before each block of resamples (the caller's chance to stop
            a long evaluation there, e.g. on Ctrl-C); None: nothing.

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
    v = episode_videos(metadata_episode, predicted_episode, true_episode, confidence)
    t = check_threshold(threshold)
    targets = [check_target(p) for p in target_accuracies]
    suffixes = [accuracy_metric_suffix(p) for p in targets]
    if len(set(suffixes)) != len(suffixes):
        raise ValueError(f"target_accuracies must be distinct, got {list(target_accuracies)}")

    scores = _mismatch_scores(v.flag, v.mismatch)
    automation = videos_automation(v, t)
    at_accuracy = videos_coverage_at_accuracy(
        v, targets, n_resamples, ci_level, seed, between_blocks
    )
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
        curve=videos_curve(v),
        coverage_at_accuracy=at_accuracy,
        groups=None if groups is None else _group_breakdown(v, groups, t),
    )
