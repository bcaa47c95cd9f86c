"""The ``promote`` config group, checked: the rule ``video-eval-promote`` applies."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig

from evaluator.decisions.compare_slices import SliceTestSettings, slice_test_settings
from evaluator.errors import InputError


@dataclass(frozen=True)
class PromotionRule:
    """The checked ``promote`` group."""

    metric: str
    alpha: float
    min_delta: float
    guardrails: dict[str, float]
    floors: dict[str, float]
    apply: bool
    champion_alias: str
    previous_alias: str
    block_on_regression: bool | None = None
    slices: SliceTestSettings = field(default_factory=SliceTestSettings)

    @property
    def slice_params(self) -> dict[str, str]:
        """The run params ``promote.slices.*``."""
        s = self.slices
        return {
            "promote.slices.block_on_regression": str(self.block_on_regression).lower()
            if self.block_on_regression is not None
            else "auto",
            "promote.slices.adjust": s.adjust,
            "promote.slices.alpha": str(s.alpha),
            "promote.slices.min_videos": "recorded" if s.min_videos is None else str(s.min_videos),
            "promote.slices.metric": str(s.metric),
        }

    def settings(self) -> dict[str, Any]:
        """The numbers of the rule, as summary.json and decision.json state them."""
        return {
            "metric": self.metric,
            "alpha": self.alpha,
            "min_delta": self.min_delta,
            "guardrails": self.guardrails,
            "floors": self.floors,
            "slices": {
                "block_on_regression": self.block_on_regression,
                "adjust": self.slices.adjust,
                "alpha": self.slices.alpha,
                "min_videos": self.slices.min_videos,
                "metric": self.slices.metric,
            },
        }


def promotion_rule(cfg: DictConfig) -> PromotionRule:
    """Turn the ``promote`` config group into a checked rule.

    Raises:
        InputError: a value out of range, naming the key.
    """
    p = cfg.promote
    alpha = float(p.alpha)
    if not 0.0 < alpha < 1.0:
        raise InputError(f"config: promote.alpha must be in (0, 1), got {p.alpha}.")
    min_delta = float(p.min_delta)
    if not math.isfinite(min_delta):
        raise InputError(f"config: promote.min_delta must be a finite number, got {p.min_delta}.")
    guardrails = {str(k): float(v) for k, v in (p.guardrails or {}).items()}
    for metric, drop in guardrails.items():
        if not (math.isfinite(drop) and drop >= 0):
            raise InputError(
                f"config: promote.guardrails.{metric} must be a drop >= 0 (the most "
                f"{metric} may fall), got {drop}."
            )
    floors = {str(k): float(v) for k, v in (p.floors or {}).items()}
    if not str(p.metric).strip():
        raise InputError("config: promote.metric is empty; name a metric, e.g. recall_at_10.")
    aliases = (str(p.champion_alias), str(p.previous_alias))
    if aliases[0] == aliases[1] or not all(aliases):
        raise InputError(
            f"config: promote.champion_alias and promote.previous_alias must be two different "
            f"non-empty names, got {aliases[0]!r} and {aliases[1]!r}."
        )
    block = p.slices.block_on_regression
    slices = slice_test_settings(
        p.slices,
        "promote.slices",
        alpha=alpha,
        metric=str(p.metric),
        enabled=True if block else None,
        one_side_ok=block is False,
        off_hint="promote.slices.block_on_regression=false",
    )
    return PromotionRule(
        metric=str(p.metric),
        alpha=alpha,
        min_delta=min_delta,
        guardrails=guardrails,
        floors=floors,
        apply=bool(p.apply),
        champion_alias=aliases[0],
        previous_alias=aliases[1],
        block_on_regression=None if block is None else bool(block),
        slices=slices,
    )
