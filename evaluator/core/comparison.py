"""Paired comparison of two models on the same videos, and the promotion rule.

The candidate and the champion are scored on the same videos, so their per-video results are
paired: the bootstrap resamples videos jointly (one set of counts for both models) and the
interval is of the difference, which is far narrower than two separate intervals when the
models agree on most videos. For 0/1 hits, the exact McNemar test on the discordant videos is
reported beside it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from evaluator.core.bootstrap import (
    as_value_matrix,
    check_confidence,
    check_resample_args,
    percentile_interval,
    resampled_means,
)

__all__ = [
    "PairedDelta",
    "PromotionCheck",
    "PromotionDecision",
    "decide_promotion",
    "mcnemar_exact",
    "paired_delta",
]


def _check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value}")
    return int(value)


def mcnemar_exact(n_gained: int, n_lost: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pair counts.

    With b = ``n_gained``, c = ``n_lost``, N = b + c, k = min(b, c) and X ~ Binomial(N, 1/2):
    ``p = min(1, 2 * P(X <= k))``, which is the two-sided exact binomial test of k successes
    in N trials at p = 0.5. ``P(X <= k) = 2**-N * sum_{i<=k} C(N, i)`` is summed in log
    space without a loop, so it stays accurate (relative error about 1e-12, checked against
    scipy.stats.binomtest) for counts in the thousands and beyond; p-values below about
    1e-308 underflow to 0.0.

    Args:
        n_gained: Videos the candidate gets right and the champion wrong (b).
        n_lost: Videos the candidate gets wrong and the champion right (c).

    Returns:
        The p-value in [0, 1]; 1.0 when b + c == 0.

    Raises:
        ValueError: If a count is not a non-negative integer.

    Example:
        >>> round(mcnemar_exact(1, 9), 6)
        0.021484
    """
    b = _check_count("n_gained", n_gained)
    c = _check_count("n_lost", n_lost)
    total = b + c
    k = min(b, c)
    if 2 * k >= total - 1:
        # k is the median or next to it: P(X <= k) >= 1/2 by symmetry.
        return 1.0
    # log C(N, i) for i = 0..k as a running sum of log((N - i + 1) / i).
    i = np.arange(1, k + 1, dtype=np.float64)
    log_comb = np.concatenate(([0.0], np.cumsum(np.log(total - i + 1.0) - np.log(i))))
    top = log_comb[-1]  # C(N, i) increases in i for i <= k < N / 2
    log_tail = top + math.log(np.exp(log_comb - top).sum()) - total * math.log(2.0)
    return min(1.0, 2.0 * math.exp(log_tail))


@dataclass(frozen=True, eq=False)
class PairedDelta:
    """Paired difference candidate - base per column, with bootstrap intervals.

    Attributes:
        cand_mean: ``mean(cand)`` per column, shape (m,).
        base_mean: ``mean(base)`` per column, shape (m,).
        delta: ``cand_mean - base_mean`` per column, shape (m,).
        ci_low: Lower end of the two-sided percentile interval of the paired bootstrap, (m,).
        ci_high: Upper end of that interval, (m,).
        lower_bound: One-sided (1 - alpha) lower bound, the alpha quantile of the resampled
            deltas, shape (m,); None when no ``one_sided_alpha`` was given.
        n_gained: Videos with cand = 1 and base = 0, per column, as float; NaN for a column
            whose values are not all 0/1 in both inputs.
        n_lost: Videos with cand = 0 and base = 1, per column; NaN for a non-binary column.
        mcnemar_p: :func:`mcnemar_exact` of (n_gained, n_lost); NaN for a non-binary column.
        n: Number of videos.
        n_resamples: Number of bootstrap resamples.
        confidence: Two-sided level of ``[ci_low, ci_high]``.
        one_sided_alpha: Alpha of ``lower_bound``, or None.
    """

    cand_mean: np.ndarray
    base_mean: np.ndarray
    delta: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    lower_bound: np.ndarray | None
    n_gained: np.ndarray
    n_lost: np.ndarray
    mcnemar_p: np.ndarray
    n: int
    n_resamples: int
    confidence: float
    one_sided_alpha: float | None


def paired_delta(
    cand: np.ndarray,
    base: np.ndarray,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    one_sided_alpha: float | None = None,
) -> PairedDelta:
    """Paired bootstrap of the difference of per-video means, candidate minus base.

    With ``d[i, j] = cand[i, j] - base[i, j]`` and ``counts`` = ``resample_counts(n,
    n_resamples, seed)`` (videos resampled jointly, the same counts for both models):

    - ``delta[j] = mean_i cand[i, j] - mean_i base[i, j]``
    - ``deltas[r, j] = sum_i counts[r, i] * d[i, j] / n``
    - ``ci_low, ci_high`` = quantiles of ``deltas`` at (1 - c) / 2 and (1 + c) / 2
    - ``lower_bound`` = quantile of ``deltas`` at alpha (one-sided (1 - alpha) bound).

    For a column where both inputs are all 0/1 (booleans included): ``n_gained = #(cand = 1,
    base = 0)``, ``n_lost = #(cand = 0, base = 1)`` and ``mcnemar_p`` = the exact McNemar
    p-value. Any other column gets NaN in those three fields.

    Args:
        cand: Candidate per-video values, shape (n,) or (n, m).
        base: Baseline (champion) per-video values, same shape and the same video order.
        n_resamples: Number of bootstrap resamples (>= 1).
        confidence: Two-sided confidence level c in (0, 1).
        seed: Seed for ``np.random.default_rng``.
        one_sided_alpha: When given, alpha in (0, 1) of the one-sided lower bound.

    Returns:
        A :class:`PairedDelta` whose arrays have shape (m,) (m = 1 for 1-D inputs).

    Raises:
        ValueError: If the inputs differ in shape, are empty, are not finite numeric (n,)
            or (n, m) arrays, or an argument is out of range.
    """
    cand_m, _ = as_value_matrix(cand, "cand")
    base_m, _ = as_value_matrix(base, "base")
    if cand_m.shape != base_m.shape:
        raise ValueError(
            "cand and base must have the same shape (videos aligned), got "
            f"{np.shape(cand)} and {np.shape(base)}"
        )
    n = cand_m.shape[0]
    if n == 0:
        raise ValueError("cand and base hold no videos; a paired comparison needs at least one")
    c = check_confidence(confidence)
    alpha = None
    if one_sided_alpha is not None:
        alpha = check_confidence(one_sided_alpha, "one_sided_alpha")
    check_resample_args(n, n_resamples, seed)

    diff = cand_m - base_m
    deltas = resampled_means(diff, n_resamples, seed)
    ci_low, ci_high = percentile_interval(deltas, c)
    lower = None if alpha is None else np.quantile(deltas, alpha, axis=0)

    binary = np.all((cand_m == 0) | (cand_m == 1), axis=0) & np.all(
        (base_m == 0) | (base_m == 1), axis=0
    )
    gained = np.where(binary, np.sum((cand_m == 1) & (base_m == 0), axis=0), np.nan)
    lost = np.where(binary, np.sum((cand_m == 0) & (base_m == 1), axis=0), np.nan)
    # One scalar test per metric column (a handful), not per video.
    p_values = np.array(
        [
            mcnemar_exact(int(g), int(lo)) if ok else math.nan
            for g, lo, ok in zip(gained, lost, binary, strict=True)
        ],
        dtype=np.float64,
    )
    cand_mean, base_mean = cand_m.mean(axis=0), base_m.mean(axis=0)
    return PairedDelta(
        cand_mean=cand_mean,
        base_mean=base_mean,
        delta=cand_mean - base_mean,
        ci_low=ci_low,
        ci_high=ci_high,
        lower_bound=lower,
        n_gained=gained.astype(np.float64),
        n_lost=lost.astype(np.float64),
        mcnemar_p=p_values,
        n=n,
        n_resamples=n_resamples,
        confidence=c,
        one_sided_alpha=alpha,
    )


@dataclass(frozen=True)
class PromotionCheck:
    """One check of the promotion rule.

    Attributes:
        kind: ``"primary"``, ``"guardrail"`` or ``"floor"``.
        metric: The metric checked.
        value: The number compared: the one-sided lower bound of the delta (primary), the
            point delta (guardrail) or the candidate's value (floor).
        limit: What it is compared against: ``min_delta`` (primary, must be exceeded
            strictly), ``-max_drop`` (guardrail, value must be >= it) or the floor (value
            must be >= it).
        passed: Whether the check passed.
        detail: The check in words, with its numbers.
    """

    kind: str
    metric: str
    value: float
    limit: float
    passed: bool
    detail: str


@dataclass(frozen=True)
class PromotionDecision:
    """Outcome of :func:`decide_promotion`.

    Attributes:
        promote: Whether the candidate should be promoted.
        reason: One sentence naming the numbers behind the decision.
        checks: Every check that was made, in order: primary, guardrails, floors.
    """

    promote: bool
    reason: str
    checks: tuple[PromotionCheck, ...]


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return out


def _percent(level: float) -> str:
    return f"{100.0 * level:.10g}%"


def decide_promotion(
    primary_metric: str,
    *,
    has_champion: bool,
    delta: float | None = None,
    lower_bound: float | None = None,
    alpha: float = 0.05,
    min_delta: float = 0.0,
    guardrails: Mapping[str, float] | None = None,
    guardrail_deltas: Mapping[str, float] | None = None,
    floors: Mapping[str, float] | None = None,
    candidate_values: Mapping[str, float] | None = None,
) -> PromotionDecision:
    """Decide whether a candidate model replaces the champion.

    With a champion (``has_champion=True``) the candidate is promoted iff both hold:

    - primary: ``lower_bound > min_delta`` (strictly), where ``lower_bound`` is the one-sided
      (1 - alpha) lower bound of the paired delta (candidate - champion) on
      ``primary_metric``. ``min_delta = 0`` asks for a significant gain; a negative
      ``min_delta`` is a non-inferiority margin under the same rule.
    - guardrails: for every ``metric -> max_drop``, the POINT delta on that metric is
      ``>= -max_drop`` ("may not drop by more than max_drop"; a drop of exactly max_drop is
      allowed). The point delta rather than a lower bound is used so that a guardrail does
      not block a candidate merely because the interval of a noisy metric is wide.

    Without a champion, the candidate is promoted iff ``candidate_values[metric] >= floor``
    for every ``metric -> floor`` in ``floors`` (no floors: promoted). Floors are not checked
    when there is a champion. Comparisons are exact in float64, with no added epsilon.

    Args:
        primary_metric: Name of the metric the gain is measured on, e.g. ``"recall_at_10"``.
        has_champion: Whether there is a champion to compare against.
        delta: Point delta (candidate - champion) on the primary metric; required with a
            champion (it is reported in the reason).
        lower_bound: One-sided (1 - alpha) lower bound of that delta; required with a
            champion.
        alpha: One-sided alpha the lower bound was computed at, in (0, 1); reported.
        min_delta: The lower bound must exceed this (strictly).
        guardrails: Metric -> largest allowed drop (>= 0) of its point delta.
        guardrail_deltas: Metric -> point delta (candidate - champion); must cover every
            guardrail metric when there is a champion.
        floors: Metric -> absolute minimum for the candidate, used without a champion.
        candidate_values: Metric -> the candidate's value; must cover every floor metric when
            there is no champion.

    Returns:
        A :class:`PromotionDecision`. Its reason reads, e.g., ``"recall_at_10 +0.031 (95%
        lower bound +0.004 > 0.000); recall_at_1 -0.004 within guardrail 0.020"``; for a
        rejection it names only the failed checks.

    Raises:
        ValueError: If a required number is missing or not finite, alpha is not in (0, 1), a
            guardrail is negative, or a guardrail / floor metric has no value.

    Example:
        >>> d = decide_promotion("recall_at_10", has_champion=True, delta=0.031,
        ...                      lower_bound=0.004, guardrails={"recall_at_1": 0.02},
        ...                      guardrail_deltas={"recall_at_1": -0.004})
        >>> d.promote, d.reason
        (True, 'recall_at_10 +0.031 (95% lower bound +0.004 > 0.000); recall_at_1 -0.004 within guardrail 0.020')
    """  # noqa: E501
    a = check_confidence(alpha, "alpha")
    margin = _finite("min_delta", min_delta)
    checks: list[PromotionCheck] = []
    if has_champion:
        if delta is None or lower_bound is None:
            raise ValueError(
                f"with a champion, delta and lower_bound of {primary_metric} are required, "
                f"got delta={delta!r}, lower_bound={lower_bound!r}"
            )
        point = _finite("delta", delta)
        bound = _finite("lower_bound", lower_bound)
        ok = bound > margin
        relation = ">" if ok else "<="
        checks.append(
            PromotionCheck(
                kind="primary",
                metric=primary_metric,
                value=bound,
                limit=margin,
                passed=ok,
                detail=f"{primary_metric} {point:+.3f} ({_percent(1.0 - a)} lower bound "
                f"{bound:+.3f} {relation} {margin:.3f})",
            )
        )
        guard_values = dict(guardrail_deltas or {})
        for metric, max_drop in (guardrails or {}).items():
            drop = _finite(f"guardrails[{metric!r}]", max_drop)
            if drop < 0:
                raise ValueError(f"guardrails[{metric!r}] must be >= 0 (a drop), got {max_drop}")
            if metric not in guard_values:
                raise ValueError(
                    f"guardrail metric {metric!r} has no delta in guardrail_deltas "
                    f"(have {sorted(guard_values)})"
                )
            value = _finite(f"guardrail_deltas[{metric!r}]", guard_values[metric])
            ok = value >= -drop
            words = "within guardrail" if ok else "drops more than guardrail"
            checks.append(
                PromotionCheck(
                    kind="guardrail",
                    metric=metric,
                    value=value,
                    limit=-drop,
                    passed=ok,
                    detail=f"{metric} {value:+.3f} {words} {drop:.3f}",
                )
            )
    else:
        values = dict(candidate_values or {})
        for metric, floor in (floors or {}).items():
            limit = _finite(f"floors[{metric!r}]", floor)
            if metric not in values:
                raise ValueError(
                    f"floor metric {metric!r} has no value in candidate_values "
                    f"(have {sorted(values)})"
                )
            value = _finite(f"candidate_values[{metric!r}]", values[metric])
            ok = value >= limit
            words = ">= floor" if ok else "below floor"
            checks.append(
                PromotionCheck(
                    kind="floor",
                    metric=metric,
                    value=value,
                    limit=limit,
                    passed=ok,
                    detail=f"{metric} {value:.3f} {words} {limit:.3f}",
                )
            )

    promote = all(check.passed for check in checks)
    if not checks:
        reason = "no champion and no floors configured, so the first candidate is promoted"
    elif promote:
        reason = "; ".join(check.detail for check in checks)
        if not has_champion:
            reason = f"no champion; {reason}"
    else:
        reason = "; ".join(check.detail for check in checks if not check.passed)
        if not has_champion:
            reason = f"no champion; {reason}"
    return PromotionDecision(promote=promote, reason=reason, checks=tuple(checks))
