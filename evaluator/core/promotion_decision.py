"""The promotion rule: promote a candidate only on paired evidence (or floors without a champion).

`decide_promotion` takes the paired deltas and one-sided lower bounds of `paired_stats` and
returns a decision with every check it made, so the reason can be stated in one sentence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from evaluator.core.bootstrap import check_confidence
from evaluator.core.slice_tests import SliceGate

__all__ = ["PromotionCheck", "PromotionDecision", "decide_promotion", "slice_checks"]


@dataclass(frozen=True)
class PromotionCheck:
    """One check of the promotion rule.

    Attributes:
        kind: ``"primary"``, ``"guardrail"``, ``"floor"`` or ``"slice"``.
        metric: The metric checked.
        value: The number compared: the one-sided lower bound of the delta (primary), the
            point delta (guardrail) or the candidate's value (floor).
        limit: What it is compared against: ``min_delta`` (primary, must be exceeded
            strictly), ``-max_drop`` (guardrail, value must be >= it), the floor (value
            must be >= it) or alpha (slice: the adjusted p-value must exceed it).
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


def _named_value(values: dict[str, float], metric: str, kind: str, noun: str, source: str) -> float:
    """``values[metric]`` (the mapping passed as ``source``) as a finite number.

    Raises:
        ValueError: The ``kind`` (guardrail, floor) metric has no ``noun`` in ``source``.
    """
    if metric not in values:
        raise ValueError(
            f"{kind} metric {metric!r} has no {noun} in {source} (have {sorted(values)})"
        )
    return _finite(f"{source}[{metric!r}]", values[metric])


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
    slices: SliceGate | None = None,
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

    - slices (when ``slices`` is given): no gated slice is a significant regression (see
      :func:`slice_checks`).

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
        slices: The slice gate's verdict (with a champion only), or None.

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
        detail = (
            f"{primary_metric} {point:+.3f} ({_percent(1.0 - a)} lower bound "
            f"{bound:+.3f} {relation} {margin:.3f})"
        )
        checks.append(PromotionCheck("primary", primary_metric, bound, margin, ok, detail))
        guard_values = dict(guardrail_deltas or {})
        for metric, max_drop in (guardrails or {}).items():
            drop = _finite(f"guardrails[{metric!r}]", max_drop)
            if drop < 0:
                raise ValueError(f"guardrails[{metric!r}] must be >= 0 (a drop), got {max_drop}")
            value = _named_value(guard_values, metric, "guardrail", "delta", "guardrail_deltas")
            ok = value >= -drop
            words = "within guardrail" if ok else "drops more than guardrail"
            detail = f"{metric} {value:+.3f} {words} {drop:.3f}"
            checks.append(PromotionCheck("guardrail", metric, value, -drop, ok, detail))
        if slices is not None:
            checks.extend(slice_checks(slices))
    else:
        values = dict(candidate_values or {})
        for metric, floor in (floors or {}).items():
            limit = _finite(f"floors[{metric!r}]", floor)
            value = _named_value(values, metric, "floor", "value", "candidate_values")
            ok = value >= limit
            words = ">= floor" if ok else "below floor"
            detail = f"{metric} {value:.3f} {words} {limit:.3f}"
            checks.append(PromotionCheck("floor", metric, value, limit, ok, detail))

    promote = all(check.passed for check in checks)
    if not checks:
        reason = "no champion and no floors configured, so the first candidate is promoted"
    else:
        # A promotion lists every check; a rejection only the failed ones.
        reason = "; ".join(check.detail for check in checks if promote or not check.passed)
        if not has_champion:
            reason = f"no champion; {reason}"
    return PromotionDecision(promote=promote, reason=reason, checks=tuple(checks))


_ADJUST_WORDS = {"holm": "Holm", "bh": "Benjamini-Hochberg"}


def slice_checks(gate: SliceGate) -> list[PromotionCheck]:
    """The slice gate as promotion checks.

    One failed check per significant regression (gated slice with adjusted one-sided
    p-value <= alpha), naming the slice and its numbers; otherwise one passed check that
    says how many slices were tested and which came closest.

    Example:
        >>> from evaluator.core.slice_tests import slice_gate
        >>> g = slice_gate("recall_at_10", np.array(["genre=anime", "genre=drama"]),
        ...                np.array([300, 500]), np.array([-0.08, 0.01]),
        ...                np.array([-0.12, -0.02]), np.array([-0.04, 0.04]),
        ...                np.array([0.0004, 0.8]), min_videos=30, alpha=0.05)
        >>> print(slice_checks(g)[0].detail)
        slice genre=anime (300 videos): recall_at_10 -0.080 (95% CI [-0.120, -0.040]), one-sided McNemar p 0.0004, Holm-adjusted p 0.0008 <= 0.05: a significant regression
    """  # noqa: E501
    method = _ADJUST_WORDS.get(gate.adjust, gate.adjust)
    level = _percent(gate.confidence)
    checks = []
    for i in np.flatnonzero(gate.significant):
        checks.append(
            PromotionCheck(
                kind="slice",
                metric=f"{gate.metric}[{gate.labels[i]}]",
                value=float(gate.p_adjusted[i]),
                limit=gate.alpha,
                passed=False,
                detail=f"slice {gate.labels[i]} ({int(gate.n_videos[i])} videos): {gate.metric} "
                f"{gate.delta[i]:+.3f} ({level} CI [{gate.ci_low[i]:+.3f}, "
                f"{gate.ci_high[i]:+.3f}]), one-sided McNemar p {gate.p_regression[i]:.2g}, "
                f"{method}-adjusted p {gate.p_adjusted[i]:.2g} <= {gate.alpha:g}: a "
                f"significant regression",
            )
        )
    if checks:
        return checks
    tested = np.flatnonzero(gate.gated)
    if tested.size == 0:
        detail = f"slices: none has >= {gate.min_videos} videos, so no slice was tested"
        lowest = math.nan
    else:
        j = tested[np.argmin(gate.p_adjusted[tested])]
        lowest = float(gate.p_adjusted[j])
        detail = (
            f"no slice regresses significantly on {gate.metric} ({tested.size} slices of >= "
            f"{gate.min_videos} videos tested, {method}-adjusted, alpha {gate.alpha:g}; lowest "
            f"adjusted p {lowest:.2g} at {gate.labels[j]}, {gate.delta[j]:+.3f})"
        )
    return [
        PromotionCheck(
            kind="slice",
            metric=gate.metric,
            value=lowest,
            limit=gate.alpha,
            passed=True,
            detail=detail,
        )
    ]
