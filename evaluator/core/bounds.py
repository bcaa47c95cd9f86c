"""The allowed range of every ranged setting, written once.

`evaluator.config_checks` checks the composed config against these bounds before any work (a
refusal exits 2), and `evaluator.core.poster.PosterSettings` checks its own values against the
same bounds (`POSTER_BOUNDS`), so a library caller gets the same rule and message as the
command line. Standard library only: the config check runs before numpy, torch or pyarrow are
imported.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Bound:
    """The allowed range of one config key.

    Attributes:
        key: the dotted config key.
        allowed: the range in words, as the message states it ("an integer >= 1").
        ok: whether a (numeric) value lies in the range.
        nullable: null is allowed (it switches the feature off).
        each: the value is a list; every item must lie in the range.
        integer: the value must be a whole number.
        words: strings allowed besides numbers (a number given as a string counts as one).
        stated: how `check_setting` states the range ("must be an integer >= 1").
    """

    key: str
    allowed: str
    ok: Callable[[float], bool]
    nullable: bool = False
    each: bool = False
    integer: bool = False
    words: tuple[str, ...] = ()
    stated: str = ""


def at_least(low: float) -> Callable[[float], bool]:
    """A finite value >= ``low``."""
    return lambda v: math.isfinite(v) and v >= low


def _within(low: float, high: float, *, open_low: bool, open_high: bool) -> Callable[[float], bool]:
    def ok(v: float) -> bool:
        above = v > low if open_low else v >= low
        below = v < high if open_high else v <= high
        return above and below

    return ok


def in_interval(
    key: str,
    allowed: str,
    low: float,
    high: float,
    *,
    open_low: bool = False,
    open_high: bool = False,
    nullable: bool = False,
    each: bool = False,
) -> Bound:
    """A bound ``low <= value <= high`` (``<`` on an open end)."""
    ok = _within(low, high, open_low=open_low, open_high=open_high)
    return Bound(key, allowed, ok, nullable=nullable, each=each)


def int_at_least(key: str, low: int, meaning: str) -> Bound:
    """An integer >= ``low``; ``meaning`` says what it counts."""
    return Bound(key, f"an integer >= {low} ({meaning})", at_least(low), integer=True)


COSINE = "a number in [-1, 1] (cosine similarity)"
# The largest k_max: a poster picker shows a handful of frames, and the per-video match and
# sweep arrays grow with k (k_max = 10**6 needed 27 GiB for 120 videos).
MAX_K = 1000

# PosterSettings field -> the bound of its config key.
POSTER_BOUNDS: dict[str, Bound] = {
    "time_tolerance_s": Bound(
        "matching.time_tolerance_s", "a finite number >= 0 (seconds)", at_least(0.0)
    ),
    "min_cosine": in_interval(
        "matching.min_cosine", COSINE + ", or null for time-only matching", -1.0, 1.0, nullable=True
    ),
    "min_expert_frames": int_at_least(
        "metrics.min_expert_frames", 1, "expert frames a video needs to be evaluated"
    ),
    "k_max": Bound(
        "metrics.k_max",
        f"an integer >= 1 and <= {MAX_K} (the largest cut-off k; every k costs memory per "
        f"video and per sweep point)",
        lambda v: 1 <= v <= MAX_K,
        integer=True,
    ),
    "sweep_time_tolerances_s": Bound(
        "sweep.time_tolerances_s",
        "a list of finite numbers >= 0 (seconds)",
        at_least(0.0),
        each=True,
    ),
    "sweep_min_cosines": in_interval(
        "sweep.min_cosines",
        "a list of numbers in [-1, 1] (cosine similarity)",
        -1.0,
        1.0,
        each=True,
    ),
}


_STATED = {
    "time_tolerance_s": "must be a finite number >= 0",
    "min_cosine": "must be in [-1, 1] or null",
    "min_expert_frames": "must be an integer >= 1",
    "k_max": f"must be an integer >= 1 and <= {MAX_K}",
    "sweep_time_tolerances_s": "must be finite and >= 0",
    "sweep_min_cosines": "must lie in [-1, 1]",
}
POSTER_BOUNDS = {name: replace(b, stated=_STATED[name]) for name, b in POSTER_BOUNDS.items()}


def check_setting(bound: Bound, value: Any) -> None:
    """Refuse a setting outside its bound (`evaluator.core.poster.PosterSettings`).

    Raises:
        ValueError: ``KEY must ..., got VALUE`` (the offending item of a list).
    """
    for item in value if bound.each else [value]:
        if not (item is None and bound.nullable) and not in_range(bound, item):
            raise ValueError(f"{bound.key} {bound.stated}, got {item!r}")


def number(value: Any) -> float | None:
    """A real number (numpy's included) as float; None for anything else (bools included)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def in_range(bound: Bound, value: Any) -> bool:
    """Whether one value (one item of an ``each`` bound) lies in the bound's range."""
    if bound.words and isinstance(value, str):
        if value.strip().lower() in bound.words:
            return True
        try:
            value = int(value)
        except ValueError:
            return False
    found = number(value)
    if found is None:
        return False
    if bound.integer and not (math.isfinite(found) and found == int(found)):
        return False
    return bound.ok(found)


def violation(bound: Bound, value: Any) -> str | None:
    """``KEY=VALUE is out of range; allowed: RANGE.`` when ``value`` breaks ``bound``, else None.

    A list (``each``) names the offending item: ``KEY=[...] (item 2: -1) is out of range; ...``.
    """
    if value is None and bound.nullable:
        return None
    if bound.each:
        items = list(value) if isinstance(value, list | tuple) else [value]
        for i, item in enumerate(items):
            if not in_range(bound, item):
                return _out_of_range(bound, f"{items} (item {i + 1}: {item})")
        return None
    if in_range(bound, value):
        return None
    return _out_of_range(bound, "null" if value is None else value)


def _out_of_range(bound: Bound, shown: Any) -> str:
    return f"{bound.key}={shown} is out of range; allowed: {bound.allowed}."
