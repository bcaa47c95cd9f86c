"""Paired comparison per slice, and the slice gate: no sizeable slice may regress significantly.

Per slice (the videos of one metadata value, aligned between candidate and champion) the
paired delta of a 0/1 metric gets a paired bootstrap interval and two exact McNemar tests on
its discordant videos: the two-sided p-value reported everywhere else, and the one-sided
p-value of a *regression* (``P(X <= n_gained)`` for X ~ Binomial(n_gained + n_lost, 1/2)),
which is what the gate asks. The one-sided p-values of the gated slices (at least
``min_videos`` videos) are adjusted across all of them together (Holm or
Benjamini-Hochberg, `evaluator.core.multiplicity`); a slice whose adjusted p-value is <=
alpha is a significant regression and blocks the promotion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from evaluator.core.bootstrap import check_confidence
from evaluator.core.multiplicity import adjust_p_values
from evaluator.core.paired_stats import log_half_binomial_cdf, paired_delta
from evaluator.core.slices import group_bounds

__all__ = ["SliceGate", "SlicePaired", "mcnemar_regression_p", "slice_gate", "slice_paired"]


def mcnemar_regression_p(n_gained: int, n_lost: int) -> float:
    """One-sided exact McNemar p-value for "the candidate is worse".

    ``p = P(X <= n_gained)`` with X ~ Binomial(n_gained + n_lost, 1/2): small when the
    candidate loses clearly more videos than it gains. 1.0 without discordant videos.

    Example:
        >>> round(mcnemar_regression_p(1, 9), 6), mcnemar_regression_p(9, 1) > 0.99
        (0.010742, True)
    """
    b, c = int(n_gained), int(n_lost)
    if b < 0 or c < 0:
        raise ValueError(f"counts must be >= 0, got n_gained={n_gained}, n_lost={n_lost}")
    total = b + c
    if 2 * b < total:
        return min(1.0, math.exp(log_half_binomial_cdf(b, total)))
    if c == 0:
        return 1.0
    # P(X <= b) = 1 - P(X <= c - 1) by symmetry, with c - 1 < total / 2.
    return 1.0 - math.exp(log_half_binomial_cdf(c - 1, total))


@dataclass(frozen=True, eq=False)
class SlicePaired:
    """The paired comparison of one 0/1 metric in every slice of one column.

    Attributes (each shape (g,)):
        n_videos: Compared videos in the slice.
        cand_mean / base_mean / delta: The metric of each model and their difference.
        ci_low / ci_high: Paired percentile bootstrap interval of the delta.
        n_gained / n_lost: Discordant videos (candidate right only / champion right only).
        mcnemar_p: Two-sided exact McNemar p-value.
        p_regression: One-sided exact McNemar p-value of a regression.
    """

    n_videos: np.ndarray
    cand_mean: np.ndarray
    base_mean: np.ndarray
    delta: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    n_gained: np.ndarray
    n_lost: np.ndarray
    mcnemar_p: np.ndarray
    p_regression: np.ndarray


def slice_paired(
    cand: np.ndarray,
    base: np.ndarray,
    codes: np.ndarray,
    n_groups: int,
    *,
    n_resamples: int,
    confidence: float,
    seed: int,
) -> SlicePaired:
    """`paired_delta` inside every slice, plus the one-sided regression test.

    Slice g is compared on ``cand[codes == g]`` against ``base[codes == g]`` (videos in
    their given order, the bootstrap seeded with ``seed``), so a slice holding every video
    reproduces the whole comparison.

    Args:
        cand / base: 0/1 per-video values of both models, aligned, shape (n,).
        codes: Slice code per video, shape (n,).
        n_groups: Number of slices.
        n_resamples / confidence / seed: The paired bootstrap.

    Raises:
        ValueError: Misaligned or non-binary inputs, bad bootstrap arguments.
    """
    c = np.asarray(cand, dtype=np.float64)
    b = np.asarray(base, dtype=np.float64)
    if c.shape != b.shape or c.ndim != 1 or np.shape(codes) != c.shape:
        raise ValueError(
            f"cand, base and codes must be 1-D of one length, got {c.shape}, {b.shape} and "
            f"{np.shape(codes)}"
        )
    if not (np.isin(c, (0.0, 1.0)).all() and np.isin(b, (0.0, 1.0)).all()):
        raise ValueError("the slice tests need a 0/1 metric per video (recall_at_k, accuracy)")
    fields = {
        name: np.full(n_groups, np.nan)
        for name in ("cand_mean", "base_mean", "delta", "ci_low", "ci_high", "n_gained")
    }
    fields.update({name: np.full(n_groups, np.nan) for name in ("n_lost", "mcnemar_p")})
    p_regression = np.full(n_groups, np.nan)
    order, starts = group_bounds(codes, n_groups)
    for g in range(n_groups):  # one paired bootstrap per slice (a handful), not per video
        rows = order[starts[g] : starts[g + 1]]
        if rows.shape[0] == 0:
            continue
        p = paired_delta(
            c[rows], b[rows], n_resamples=n_resamples, confidence=confidence, seed=seed
        )
        for name in fields:
            fields[name][g] = getattr(p, name)[0]
        p_regression[g] = mcnemar_regression_p(int(p.n_gained[0]), int(p.n_lost[0]))
    return SlicePaired(
        n_videos=np.diff(starts).astype(np.int64), p_regression=p_regression, **fields
    )


@dataclass(frozen=True, eq=False)
class SliceGate:
    """The slice gate's verdict on every slice (all columns together).

    Attributes:
        metric: The 0/1 metric tested (e.g. ``recall_at_10``).
        labels: ``column=value`` per slice, shape (s,).
        n_videos / delta / ci_low / ci_high / p_regression: per slice, from `slice_paired`.
        gated: Slices with at least ``min_videos`` videos (the only ones tested).
        p_adjusted: Adjusted one-sided p-value of each gated slice (NaN where not gated).
        significant: Gated slices with ``p_adjusted <= alpha`` (significant regressions).
        adjust: ``holm`` or ``bh``.
        alpha: The level.
        min_videos: The smallest gated slice.
        confidence: Two-sided level of the intervals.
    """

    metric: str
    labels: np.ndarray
    n_videos: np.ndarray
    delta: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p_regression: np.ndarray
    gated: np.ndarray
    p_adjusted: np.ndarray
    significant: np.ndarray
    adjust: str
    alpha: float
    min_videos: int
    confidence: float

    @property
    def blocks(self) -> bool:
        """Whether some gated slice regresses significantly."""
        return bool(self.significant.any())


def slice_gate(
    metric: str,
    labels: np.ndarray,
    n_videos: np.ndarray,
    delta: np.ndarray,
    ci_low: np.ndarray,
    ci_high: np.ndarray,
    p_regression: np.ndarray,
    *,
    min_videos: int,
    alpha: float,
    adjust: str = "holm",
    confidence: float = 0.95,
) -> SliceGate:
    """Adjust the regression p-values of the gated slices and mark the significant ones.

    A slice is gated when ``n_videos >= min_videos``; the adjustment runs over the gated
    slices of every column together (m = their number). A gated slice is a significant
    regression when its adjusted p-value is <= alpha (exactly, no epsilon).

    Raises:
        ValueError: alpha not in (0, 1), a negative ``min_videos``, an unknown adjustment,
            arrays of different lengths.

    Example:
        >>> g = slice_gate("recall_at_10", np.array(["genre=a", "genre=b"]),
        ...                np.array([300, 20]), np.array([-0.08, -0.2]),
        ...                np.array([-0.12, -0.4]), np.array([-0.04, 0.0]),
        ...                np.array([0.0004, 0.001]), min_videos=30, alpha=0.05)
        >>> g.significant.tolist(), g.p_adjusted.tolist()[0]
        ([True, False], 0.0004)
    """
    a = check_confidence(alpha, "alpha")
    if isinstance(min_videos, bool) or int(min_videos) != min_videos or min_videos < 0:
        raise ValueError(f"min_videos must be an integer >= 0, got {min_videos!r}")
    arrays = [np.asarray(x) for x in (labels, n_videos, delta, ci_low, ci_high, p_regression)]
    if len({x.shape for x in arrays}) != 1:
        raise ValueError(f"slice arrays differ in shape: {[x.shape for x in arrays]}")
    n = np.asarray(n_videos, dtype=np.int64)
    p = np.asarray(p_regression, dtype=np.float64)
    gated = (n >= int(min_videos)) & ~np.isnan(p)
    adjusted = adjust_p_values(np.where(gated, p, np.nan), adjust)
    significant = gated & (adjusted <= a)
    return SliceGate(
        metric=metric,
        labels=np.asarray(labels, dtype=object),
        n_videos=n,
        delta=np.asarray(delta, dtype=np.float64),
        ci_low=np.asarray(ci_low, dtype=np.float64),
        ci_high=np.asarray(ci_high, dtype=np.float64),
        p_regression=p,
        gated=gated,
        p_adjusted=adjusted,
        significant=significant,
        adjust=adjust,
        alpha=a,
        min_videos=int(min_videos),
        confidence=check_confidence(confidence),
    )
