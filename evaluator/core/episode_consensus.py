"""The second, text-based reading of the episode number and the consensus policy.

A second method reads the episode number from the burned-in text (``text_episode``; NaN = it
read none). The *consensus policy* decides a video without a human when the model's and the
text-based readings agree and the model's confidence reaches the threshold; it is scored like
the single model (`evaluator.core.episode_coverage`): a decision is right when the model's flag
(``predicted != metadata``) equals the truth (``true != metadata``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from evaluator.core.episode_coverage import RiskCoverageCurve, videos_curve
from evaluator.core.episode_inputs import Videos, check_threshold, ratio


def _text_episode(values: np.ndarray, n: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise ValueError(
            f"text_episode must have one value per video, shape ({n},), got {arr.shape}"
        )
    if arr.dtype.kind in "iu":
        return arr.astype(np.float64)
    if arr.dtype.kind != "f":
        raise ValueError(f"text_episode must hold whole numbers or NaN, got dtype {arr.dtype}")
    bad = np.flatnonzero(np.isinf(arr) | (np.isfinite(arr) & (arr != np.round(arr))))
    if bad.size:
        raise ValueError(
            f"text_episode must hold whole numbers or NaN (read none); rows {bad[:5].tolist()} "
            f"hold {arr[bad[:5]].tolist()}"
        )
    return arr.astype(np.float64)


@dataclass(frozen=True, eq=False)
class Readings:
    """The second, text-based reading against the model's and the truth.

    Attributes:
        text_episode_correct: ``text_episode == true`` (a missing reading is wrong).
        agree: ``predicted == text_episode`` (a missing reading disagrees).
    """

    text_episode_correct: np.ndarray
    agree: np.ndarray


def second_readings(
    predicted_episode: np.ndarray, true_episode: np.ndarray, text_episode: np.ndarray
) -> Readings:
    """Compare the text-based reading with the model's and with the truth.

    Args:
        predicted_episode: The model's episode numbers, shape (n,).
        true_episode: The verified episode numbers, shape (n,).
        text_episode: The text-based reading, shape (n,); NaN = it read none.

    Returns:
        A :class:`Readings` (NaN compares unequal to everything, so a missing reading is
        wrong and disagrees).

    Raises:
        ValueError: A value that is not a whole number or NaN, or a length that differs.
    """
    pred = np.asarray(predicted_episode)
    text = _text_episode(text_episode, pred.shape[0])
    return Readings(text == np.asarray(true_episode), text == pred)


@dataclass(frozen=True)
class ConsensusAutomation:
    """What the consensus policy decides alone at one confidence threshold.

    Attributes:
        decided: Per video, ``agree & (confidence >= threshold)``.
        coverage: ``sum(decided) / n``.
        auto_accuracy: ``sum(decided & flag == truth) / sum(decided)``; NaN when none decided.
        n_missed_mismatches: ``sum(decided & predicted == metadata != true)``.
    """

    decided: np.ndarray
    coverage: float
    auto_accuracy: float
    n_missed_mismatches: int


def consensus_automation(v: Videos, agree: np.ndarray, threshold: float) -> ConsensusAutomation:
    """The consensus policy at ``threshold`` (see the module docstring).

    Args:
        v: The validated per-video episode values.
        agree: Per video, whether the two readings agree.
        threshold: Confidence at or above which an agreeing video is decided alone.

    Returns:
        A :class:`ConsensusAutomation`.
    """
    decided = agree & (v.confidence >= check_threshold(threshold))
    n_decided = int(decided.sum())
    return ConsensusAutomation(
        decided=decided,
        coverage=n_decided / v.n,
        auto_accuracy=float(ratio(np.sum(decided & v.flag_right), n_decided, math.nan)),
        n_missed_mismatches=int(np.sum(decided & ~v.flag & v.mismatch)),
    )


def consensus_curve(v: Videos, agree: np.ndarray) -> RiskCoverageCurve:
    """The consensus policy's risk-coverage curve, built as the single model's is.

    Only agreeing videos can be decided alone, so the points are the distinct confidences of
    the agreeing videos, descending; at point c the decided videos are the agreeing ones with
    confidence >= c, and ``coverage = n_auto / n`` counts all n videos, so the curve ends at
    the share of agreeing videos (not 1) and sits beside the single model's curve on one
    axis. Without an agreeing video the curve has no point.

    Args:
        v: The validated per-video episode values.
        agree: Per video, whether the two readings agree.

    Returns:
        A :class:`RiskCoverageCurve` (every array empty when no video agrees).
    """
    if not agree.any():
        empty_f, empty_i = np.zeros(0), np.zeros(0, dtype=np.int64)
        return RiskCoverageCurve(empty_f, empty_f, empty_f, empty_i, empty_i, empty_i, empty_i)
    sub = Videos(v.confidence[agree], v.episode_correct[agree], v.flag[agree], v.mismatch[agree])
    curve = videos_curve(sub)
    return dataclasses.replace(curve, coverage=curve.n_auto / v.n)
