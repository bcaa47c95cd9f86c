"""Episode verification, the text side: how well the burned-in text is read, and a second reading.

Per video there may be three more values (all optional):

- ``text_read``: the text the reader extracted from the burned-in text (None or "" = nothing);
- ``text_true``: its human transcription (None = not transcribed, the video is left out of the
  text metrics; "" = the video has no burned-in text);
- ``text_episode``: the episode number a second, text-based method reads (NaN = none).

Texts are compared after :func:`normalize_text`. The edit distance is the Levenshtein distance
over Unicode code points (insertions, deletions and substitutions each cost 1), computed by
rapidfuzz. The second reading and the consensus policy are in
`evaluator.core.episode_consensus`; :func:`evaluate_episode_text` computes everything.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz.distance import Levenshtein

from evaluator.core.bootstrap import (
    check_confidence,
    check_resample_args,
    iter_resample_counts,
)
from evaluator.core.episode_consensus import (
    ConsensusAutomation,
    Readings,
    consensus_automation,
    consensus_curve,
    second_readings,
)
from evaluator.core.episode_coverage import RiskCoverageCurve
from evaluator.core.episode_inputs import Videos, check_threshold, episode_videos, ratio

TEXT_METRICS = (
    "text_cer",
    "text_cer_ci_low",
    "text_cer_ci_high",
    "text_exact_match",
    "text_exact_match_ci_low",
    "text_exact_match_ci_high",
    "n_text_videos",
    "episode_errors_with_text_error",
)
CONSENSUS_METRICS = (
    "text_episode_accuracy",
    "readings_agree",
    "accuracy_when_readings_agree",
    "consensus_coverage",
    "consensus_auto_accuracy",
    "consensus_missed_mismatches",
)
COUNT_METRICS = ("n_text_videos", "consensus_missed_mismatches")


def normalize_text(text: str | None) -> str:
    """The form texts are compared in: NFKC, every whitespace run to one space, stripped.

    Whitespace is what ``str.isspace`` says it is (tabs, newlines, NBSP, the ideographic
    space U+3000, ...). None (nothing read / nothing transcribed) is "".

    Args:
        text: A text, or None.

    Returns:
        The normalised text.

    Example:
        >>> normalize_text(" 제１２화\\t\\u3000Part\\u00a02 \\n")
        '제12화 Part 2'
    """
    if text is None:
        return ""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def _texts(name: str, values: Sequence[str | None] | np.ndarray) -> list[str | None]:
    if isinstance(values, np.ndarray) and values.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one text per video), got shape {values.shape}")
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    bad = [i for i, x in enumerate(items) if x is not None and not isinstance(x, str)]
    if bad:
        raise ValueError(
            f"{name} must hold texts (str) or None; rows {bad[:5]} hold "
            f"{[items[i] for i in bad[:5]]!r}"
        )
    return items


@dataclass(frozen=True, eq=False)
class TextReads:
    """Per video: the normalised texts and their edit distance.

    Attributes:
        read: Normalised ``text_read`` ("" when nothing was read), object array (n,).
        truth: Normalised ``text_true`` ("" when not transcribed), object array (n,).
        has_truth: Whether the video has a ``text_true`` (it is in the text metrics).
        distance: Levenshtein distance of ``read`` to ``truth``; 0 without a truth.
        truth_length: Code points of ``truth``; 0 without a truth.
    """

    read: np.ndarray
    truth: np.ndarray
    has_truth: np.ndarray
    distance: np.ndarray
    truth_length: np.ndarray

    @property
    def n(self) -> int:
        return int(self.has_truth.shape[0])

    @property
    def exact(self) -> np.ndarray:
        """Transcribed and read exactly (the normalised texts are equal)."""
        return self.has_truth & (self.distance == 0)

    @property
    def misread(self) -> np.ndarray:
        """Transcribed and read differently."""
        return self.has_truth & (self.distance > 0)

    @property
    def video_cer(self) -> np.ndarray:
        """Per video ``distance / truth_length``; NaN without a truth or for an empty one."""
        return ratio(self.distance, np.where(self.has_truth, self.truth_length, 0), math.nan)


def text_reads(
    text_read: Sequence[str | None] | np.ndarray, text_true: Sequence[str | None] | np.ndarray
) -> TextReads:
    """Normalise both texts of every video and measure their edit distance.

    Args:
        text_read: What the reader read per video (str, or None = nothing), shape (n,).
        text_true: The transcription per video (str; None = not transcribed), shape (n,).

    Returns:
        A :class:`TextReads`.

    Raises:
        ValueError: A value that is neither a str nor None, or the lengths differ.
    """
    read_raw = _texts("text_read", text_read)
    true_raw = _texts("text_true", text_true)
    if len(read_raw) != len(true_raw):
        raise ValueError(
            f"text_read and text_true must have one value per video, got lengths "
            f"{len(read_raw)} and {len(true_raw)}"
        )
    read = [normalize_text(x) for x in read_raw]
    truth = [normalize_text(x) for x in true_raw]
    has_truth = np.array([x is not None for x in true_raw], dtype=bool)
    distance = np.array(
        [
            Levenshtein.distance(r, t) if h else 0
            for r, t, h in zip(read, truth, has_truth, strict=True)
        ],
        dtype=np.int64,
    )
    length = np.array([len(t) for t in truth], dtype=np.int64) * has_truth
    return TextReads(
        read=np.asarray(read, dtype=object),
        truth=np.asarray(truth, dtype=object),
        has_truth=has_truth,
        distance=distance,
        truth_length=length.astype(np.int64),
    )


def text_cer(reads: TextReads) -> float:
    """Corpus-level character error rate over the transcribed videos.

    ``text_cer = sum(distance) / sum(len(norm(text_true)))`` over the videos with a
    ``text_true``; NaN when that sum is 0 (no character to read: no transcribed video, or
    only empty transcriptions). It can exceed 1 (a read longer than the truth).

    Args:
        reads: From :func:`text_reads`.

    Returns:
        The rate, or NaN.
    """
    return float(ratio(reads.distance.sum(), reads.truth_length.sum(), math.nan))


# --------------------------------------------------------------------------- intervals


def text_intervals(
    reads: TextReads, *, n_resamples: int, ci_level: float, seed: int
) -> tuple[float, float, float, float]:
    """Percentile bootstrap intervals of ``text_cer`` and ``text_exact_match``.

    The transcribed videos (m of them, in their given order) are resampled with
    ``iter_resample_counts(m, n_resamples, seed)``; resample r gives
    ``cer[r] = sum_i counts[r, i] * distance[i] / sum_i counts[r, i] * len[i]`` (a ratio of
    sums, as the point estimate) and ``exact[r] = sum_i counts[r, i] * exact[i] / m``. The
    interval of ``cer`` is taken over the resamples whose denominator is > 0 (NaN when none
    is); both are NaN when no video is transcribed.

    Args:
        reads: From :func:`text_reads`.
        n_resamples: Resamples (>= 1).
        ci_level: Two-sided level in (0, 1).
        seed: Seed for ``np.random.default_rng``.

    Returns:
        ``(cer_low, cer_high, exact_low, exact_high)``.
    """
    level = check_confidence(ci_level, "ci_level")
    rows = np.flatnonzero(reads.has_truth)
    m = rows.shape[0]
    check_resample_args(m, n_resamples, seed)
    if m == 0:
        return (math.nan,) * 4
    dist = reads.distance[rows].astype(np.float64)
    length = reads.truth_length[rows].astype(np.float64)
    exact = (reads.distance[rows] == 0).astype(np.float64)
    cer = np.empty(n_resamples)
    match = np.empty(n_resamples)
    start = 0
    for counts in iter_resample_counts(m, n_resamples, seed):
        stop = start + len(counts)
        cer[start:stop] = ratio(counts @ dist, counts @ length, math.nan)
        match[start:stop] = counts @ exact / m
        start = stop
    q = [(1.0 - level) / 2.0, (1.0 + level) / 2.0]
    finite = cer[np.isfinite(cer)]
    cer_low, cer_high = np.quantile(finite, q) if finite.size else (math.nan, math.nan)
    em_low, em_high = np.quantile(match, q)
    return float(cer_low), float(cer_high), float(em_low), float(em_high)


def grouped_text_intervals(
    reads: TextReads,
    codes: np.ndarray,
    n_groups: int,
    *,
    n_resamples: int,
    ci_level: float,
    seed: int,
) -> dict[str, np.ndarray]:
    """:func:`text_intervals` within each group (slice) of videos, each over its own videos.

    Group g's intervals are ``text_intervals`` of its videos in their given order, so a group
    holding every video gets the whole set's intervals.

    Returns:
        ``text_cer_ci_low``, ``text_cer_ci_high``, ``text_exact_match_ci_low``,
        ``text_exact_match_ci_high``, each shape (n_groups,); NaN for a group without a
        transcribed video.
    """
    c = np.asarray(codes, dtype=np.int64)
    out = np.full((4, n_groups), np.nan)
    for g in range(n_groups):  # one bootstrap per group, over its own videos
        rows = np.flatnonzero((c == g) & reads.has_truth)
        if rows.size:
            out[:, g] = text_intervals(
                _take(reads, rows), n_resamples=n_resamples, ci_level=ci_level, seed=seed
            )
    names = (
        "text_cer_ci_low",
        "text_cer_ci_high",
        "text_exact_match_ci_low",
        "text_exact_match_ci_high",
    )
    return dict(zip(names, out, strict=True))


def _take(reads: TextReads, rows: np.ndarray) -> TextReads:
    return TextReads(
        read=reads.read[rows],
        truth=reads.truth[rows],
        has_truth=reads.has_truth[rows],
        distance=reads.distance[rows],
        truth_length=reads.truth_length[rows],
    )


# --------------------------------------------------------------------------- per group


def grouped_text_metrics(
    v: Videos,
    reads: TextReads | None,
    readings: Readings | None,
    codes: np.ndarray,
    n_groups: int,
    *,
    threshold: float,
) -> dict[str, np.ndarray]:
    """The text and consensus metrics within each group, with the whole set's definitions.

    Args:
        v: The validated per-video episode values.
        reads: The text reads, or None (no text columns).
        readings: The second reading, or None (no ``text_episode``).
        codes: Group code per video in [0, n_groups), shape (n,).
        n_groups: Number of groups.
        threshold: The confidence threshold of the automated decisions.

    Returns:
        Column name -> array (n_groups,): ``text_cer``, ``text_exact_match``,
        ``n_text_videos`` with ``reads``; the six consensus metrics with ``readings``. Shares
        with an empty denominator are NaN, as for the whole set.
    """
    c = np.asarray(codes, dtype=np.int64)

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(c, weights=values.astype(np.float64), minlength=n_groups)

    out: dict[str, np.ndarray] = {}
    if reads is not None:
        n_text = total(reads.has_truth)
        out["text_cer"] = ratio(total(reads.distance), total(reads.truth_length), math.nan)
        out["text_exact_match"] = ratio(total(reads.exact), n_text, math.nan)
        out["n_text_videos"] = n_text.astype(np.int64)
    if readings is not None:
        size = np.bincount(c, minlength=n_groups)
        agree = readings.agree
        decided = agree & (v.confidence >= threshold)
        n_decided = total(decided)
        out["text_episode_accuracy"] = ratio(total(readings.text_episode_correct), size, math.nan)
        out["readings_agree"] = ratio(total(agree), size, math.nan)
        out["accuracy_when_readings_agree"] = ratio(
            total(agree & v.episode_correct), total(agree), math.nan
        )
        out["consensus_coverage"] = ratio(n_decided, size, math.nan)
        out["consensus_auto_accuracy"] = ratio(total(decided & v.flag_right), n_decided, math.nan)
        out["consensus_missed_mismatches"] = total(decided & ~v.flag & v.mismatch).astype(np.int64)
    return out


# --------------------------------------------------------------------------- everything


@dataclass(frozen=True, eq=False)
class EpisodeTextResult:
    """Everything the text side of the episode evaluation reports.

    Attributes:
        metrics: Name -> value: with ``text_true`` the names of ``TEXT_METRICS``, with
            ``text_episode`` those of ``CONSENSUS_METRICS``; NaN where a share has an empty
            denominator (not logged).
        reads: The per-video reads, or None without ``text_true``.
        readings: The second reading, or None without ``text_episode``.
        consensus: The consensus policy at the threshold, or None without ``text_episode``.
        curve: The consensus risk-coverage curve, or None without ``text_episode``.
    """

    metrics: dict[str, float]
    reads: TextReads | None
    readings: Readings | None
    consensus: ConsensusAutomation | None
    curve: RiskCoverageCurve | None


def evaluate_episode_text(
    metadata_episode: np.ndarray,
    predicted_episode: np.ndarray,
    true_episode: np.ndarray,
    confidence: np.ndarray,
    *,
    text_read: Sequence[str | None] | np.ndarray | None = None,
    text_true: Sequence[str | None] | np.ndarray | None = None,
    text_episode: np.ndarray | None = None,
    threshold: float,
    n_resamples: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
) -> EpisodeTextResult:
    """Text-extraction accuracy and the consensus of two readings (docs/metrics.md).

    With ``text_true`` (``text_read`` None = nothing read anywhere), over the m videos with a
    ``text_true``: ``text_cer`` (:func:`text_cer`), ``text_exact_match = #(distance == 0) / m``,
    ``n_text_videos = m``, their intervals (:func:`text_intervals`), and
    ``episode_errors_with_text_error`` = among those videos with ``predicted != true``, the
    share with ``distance > 0``. With ``text_episode``, over all n videos:
    ``text_episode_accuracy = #(text == true) / n``, ``readings_agree = #(predicted == text)
    / n``, ``accuracy_when_readings_agree = #(agree & predicted == true) / #agree``, and the
    consensus policy at ``threshold`` (:func:`consensus_automation`): ``consensus_coverage``,
    ``consensus_auto_accuracy``, ``consensus_missed_mismatches``. A share whose denominator
    is 0 is NaN.

    Args:
        metadata_episode / predicted_episode / true_episode / confidence: As for
            `evaluator.core.episode.evaluate_episodes`.
        text_read: What the reader read per video (str or None), or None.
        text_true: The transcription per video (str; None = not transcribed), or None.
        text_episode: The text-based reading per video (NaN = none), or None.
        threshold: Confidence at or above which a video may be decided alone.
        n_resamples / ci_level / seed: The bootstrap of the text intervals.

    Returns:
        An :class:`EpisodeTextResult`.

    Raises:
        ValueError: Misaligned or malformed inputs.

    Example:
        >>> r = evaluate_episode_text([1, 2], [1, 3], [1, 2], [0.9, 0.9], threshold=0.5,
        ...     text_read=["EP 1", "EP3"], text_true=["EP 1", "EP 2"], text_episode=[1, 2],
        ...     n_resamples=20)
        >>> r.metrics["text_cer"], r.metrics["text_exact_match"], r.metrics["readings_agree"]
        (0.25, 0.5, 0.5)
    """
    v = episode_videos(metadata_episode, predicted_episode, true_episode, confidence)
    t = check_threshold(threshold)
    metrics: dict[str, float] = {}
    reads = None
    if text_true is not None:
        read = [None] * v.n if text_read is None else text_read
        reads = text_reads(read, text_true)
        if reads.n != v.n:
            raise ValueError(f"text_true must have one value per video ({v.n}), got {reads.n}")
        m = int(reads.has_truth.sum())
        cer_low, cer_high, em_low, em_high = text_intervals(
            reads, n_resamples=n_resamples, ci_level=ci_level, seed=seed
        )
        wrong = reads.has_truth & ~v.episode_correct
        metrics.update(
            {
                "text_cer": text_cer(reads),
                "text_cer_ci_low": cer_low,
                "text_cer_ci_high": cer_high,
                "text_exact_match": float(ratio(reads.exact.sum(), m, math.nan)),
                "text_exact_match_ci_low": em_low,
                "text_exact_match_ci_high": em_high,
                "n_text_videos": float(m),
                "episode_errors_with_text_error": float(
                    ratio(np.sum(wrong & reads.misread), wrong.sum(), math.nan)
                ),
            }
        )
    readings = consensus = curve = None
    if text_episode is not None:
        readings = second_readings(predicted_episode, true_episode, np.asarray(text_episode))
        consensus = consensus_automation(v, readings.agree, t)
        n_agree = int(readings.agree.sum())
        metrics.update(
            {
                "text_episode_accuracy": float(readings.text_episode_correct.mean()),
                "readings_agree": n_agree / v.n,
                "accuracy_when_readings_agree": float(
                    ratio(np.sum(readings.agree & v.episode_correct), n_agree, math.nan)
                ),
                "consensus_coverage": consensus.coverage,
                "consensus_auto_accuracy": consensus.auto_accuracy,
                "consensus_missed_mismatches": float(consensus.n_missed_mismatches),
            }
        )
        curve = consensus_curve(v, readings.agree)
    return EpisodeTextResult(metrics, reads, readings, consensus, curve)


def worst_misreads_order(reads: TextReads, video_ids: np.ndarray) -> np.ndarray:
    """The misread videos, worst first: the most character errors, then the highest per-video
    error rate (``distance / len(truth)``; an empty truth counts as the highest), then video id.

    The first key is what a video adds to the numerator of ``text_cer``.

    Args:
        reads: From :func:`text_reads`.
        video_ids: Video id per video, shape (n,).

    Returns:
        Row indices of the misread videos in that order.
    """
    rows = np.flatnonzero(reads.misread)
    dist = reads.distance[rows]
    length = reads.truth_length[rows]
    rate = ratio(dist, length, math.inf)
    ids = np.asarray(video_ids).astype(str)[rows]
    return rows[np.lexsort((ids, -rate, -dist))]
