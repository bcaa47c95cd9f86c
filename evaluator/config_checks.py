"""Every config value with a meaningful range, checked once at the command-line edge.

Each command calls its check (`check_evaluate_config`, `check_compare_config`,
`check_promote_config`) right after Hydra composed the config and before anything heavy is
imported (MLflow, torch, matplotlib, pyarrow), so a bad value or a misspelt path is refused
within a fraction of a second. A refusal is an `InputError` naming the key, the value and the
allowed range; the command exits with status 2.

Hydra's schemas (`evaluator.config`) already refuse unknown keys and values of the wrong type;
these checks add the ranges the types cannot express. The ranges are written once, as `Bound`s
(`evaluator.core.bounds`); those of the poster settings are also what
`evaluator.core.poster.PosterSettings` checks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from evaluator.core.bounds import (
    POSTER_BOUNDS,
    Bound,
    at_least,
    in_interval,
    int_at_least,
    number,
    violation,
)
from evaluator.errors import InputError
from evaluator.io.output_paths import check_writable_folder
from evaluator.io.paths import check_input_path

TASKS = ("poster", "episode")
_ABSENT = object()


def _rate(key: str, allowed: str, *, nullable: bool = False) -> Bound:
    """A bound in the open interval (0, 1): confidences and error rates."""
    return in_interval(key, allowed, 0.0, 1.0, open_low=True, open_high=True, nullable=nullable)


def _count_or_null(key: str, low: int, meaning: str, null: str) -> Bound:
    """An integer >= ``low``, or null (``null`` says what null means)."""
    allowed = f"an integer >= {low} ({meaning}), {null}"
    return Bound(key, allowed, at_least(low), nullable=True, integer=True)


def _bootstrap(prefix: str, min_resamples: int) -> list[Bound]:
    resamples = "0 = no intervals" if min_resamples == 0 else "bootstrap resamples"
    return [
        int_at_least(f"{prefix}.n_resamples", min_resamples, resamples),
        _rate(f"{prefix}.confidence", "a number in (0, 1) (the interval's coverage, e.g. 0.95)"),
        int_at_least(f"{prefix}.seed", 0, "the resampling seed"),
    ]


_POSTER = POSTER_BOUNDS
EVALUATE_BOUNDS: tuple[Bound, ...] = (
    _POSTER["time_tolerance_s"],
    _POSTER["min_cosine"],
    int_at_least("calibration.max_pairs", 1, "unrelated pairs computed at most"),
    int_at_least("calibration.seed", 0, "the sampling seed"),
    in_interval(
        "calibration.warn_rate", "a number in [0, 1] (a share of unrelated pairs)", 0.0, 1.0
    ),
    _POSTER["min_expert_frames"],
    _POSTER["k_max"],
    *_bootstrap("metrics.bootstrap", 0),
    _POSTER["sweep_time_tolerances_s"],
    _POSTER["sweep_min_cosines"],
    int_at_least("embedder.batch_size", 1, "images per forward pass"),
    Bound(
        "embedder.num_workers",
        "auto, or an integer >= 0 (decoding worker processes)",
        at_least(0),
        integer=True,
        words=("auto",),
    ),
    int_at_least("embedder.image_size", 16, "crop size in pixels"),
    int_at_least("engine.memory_budget_mb", 1, "megabytes of working set"),
    in_interval("episode.confidence_threshold", "a number in [0, 1] (confidences are)", 0.0, 1.0),
    in_interval(
        "episode.target_accuracy",
        "a number in (0, 1] (the accuracy the automation must reach)",
        0.0,
        1.0,
        open_low=True,
    ),
    *_bootstrap("episode.bootstrap", 1),
    int_at_least("report.page_size", 1, "videos per gallery page"),
    int_at_least("report.thumbnail_px", 0, "thumbnail height in pixels; 0 = timelines only"),
    int_at_least("report.max_thumbnail_videos", 0, "videos that get thumbnails"),
    _count_or_null(
        "report.max_gallery_videos", 0, "videos in the report's gallery", "or null for all"
    ),
    int_at_least("slices.min_videos", 1, "videos a slice needs to be gated"),
)


def _slice_gate(prefix: str) -> list[Bound]:
    return [
        _rate(
            f"{prefix}.alpha",
            "a number in (0, 1) (the error rate after adjustment), or null",
            nullable=True,
        ),
        _count_or_null(f"{prefix}.min_videos", 1, "the smallest slice tested", "or null"),
    ]


COMPARE_BOUNDS: tuple[Bound, ...] = (*_bootstrap("bootstrap", 1), *_slice_gate("slices"))

PROMOTE_BOUNDS: tuple[Bound, ...] = (
    *COMPARE_BOUNDS,
    _rate("promote.alpha", "a number in (0, 1) (the one-sided error rate of the lower bound)"),
    Bound("promote.min_delta", "a finite number (the margin)", math.isfinite),
    *_slice_gate("promote.slices"),
)


def check_bounds(cfg: DictConfig, bounds: Iterable[Bound]) -> None:
    """Refuse the first value outside its range.

    Args:
        cfg: the composed config (keys absent from it are skipped).
        bounds: the ranges to check.

    Raises:
        InputError: ``config: KEY=VALUE is out of range; allowed: RANGE.``
    """
    for bound in bounds:
        value = OmegaConf.select(cfg, bound.key, default=_ABSENT)
        if value is _ABSENT:
            continue
        if isinstance(value, ListConfig):
            value = list(value)
        problem = violation(bound, value)
        if problem is not None:
            raise InputError(f"config: {problem}")


def _mapping_values(cfg: DictConfig, key: str, allowed: str, ok: Callable[[float], bool]) -> None:
    node = OmegaConf.select(cfg, key, default=None)
    if node is None:
        return
    for name, value in node.items():
        found = number(value)
        if found is None or not ok(found):
            raise InputError(f"config: {key}.{name}={value} is out of range; allowed: {allowed}.")


def required_path(cfg: DictConfig, key: str, what: str) -> None:
    """The input table a config key names, refused when missing or not a table.

    Args:
        cfg: the composed config.
        key: the dotted key (``data.experts``).
        what: what the file holds, for the message when the key is not set.

    Raises:
        InputError: the key is not set, or the path is not an existing .parquet, .csv or
            .jsonl file, a directory of part files or a glob that matches (with
            ``engine=spark`` any URI or ``table:NAME`` is left to Spark).
    """
    value = OmegaConf.select(cfg, key, default=None)
    if not value:
        raise InputError(f"config: {key} is required: pass {key}=PATH ({what}).")
    spark = str(OmegaConf.select(cfg, "engine.name", default="local")) == "spark"
    check_input_path(str(value), spark=spark)


CENTER_MODES = ("off", "experts")


def check_center(cfg: DictConfig) -> str:
    """``matching.center``: ``off`` or ``experts`` (not with ``engine=spark``).

    Returns:
        The mode.

    Raises:
        InputError: an unknown mode, or ``experts`` with ``engine=spark``.
    """
    center = str(OmegaConf.select(cfg, "matching.center", default="off"))
    if center not in CENTER_MODES:
        raise InputError(
            f"config: matching.center={center} is not known; allowed: off (cosines of the "
            f"vectors as they are) or experts (subtract the mean vector of the eligible expert "
            f"frames first)."
        )
    if center == "experts" and str(OmegaConf.select(cfg, "engine.name", default="local")) == (
        "spark"
    ):
        raise InputError(
            "config: matching.center=experts is not supported with engine=spark yet; use "
            "engine=local, or matching.center=off (the calibration figures are logged either way)."
        )
    return center


POSTER_FILE = "a .parquet, .csv or .jsonl file, a directory of part files or a glob"
EPISODE_FILE = (
    "a .parquet, .csv or .jsonl file with video_id, metadata_episode, predicted_episode, "
    "confidence, true_episode"
)


def check_evaluate_config(cfg: DictConfig) -> None:
    """``video-eval``: the task, every ranged value, and the input paths.

    Raises:
        InputError: the first problem found.
    """
    task = str(OmegaConf.select(cfg, "task.name", default="poster"))
    if task not in TASKS:
        raise InputError(f"config: task={task} is not available; use task=poster or task=episode.")
    check_bounds(cfg, EVALUATE_BOUNDS)
    if task == "poster":
        check_center(cfg)
        required_path(cfg, "data.experts", POSTER_FILE)
        required_path(cfg, "data.predictions", POSTER_FILE)
        root = OmegaConf.select(cfg, "data.image_root", default=None)
        if root and not Path(str(root)).is_dir():
            raise InputError(
                f"config: data.image_root={root} is not a folder (looked in "
                f"{Path(str(root)).resolve().parent}); image paths are resolved inside it."
            )
    else:
        required_path(cfg, "data.episodes", f"{EPISODE_FILE}; required for task=episode")
    temp_dir = OmegaConf.select(cfg, "engine.temp_dir", default=None)
    if temp_dir:
        check_writable_folder(str(temp_dir), "engine.temp_dir", create=False)
    check_memory(cfg, task)


def check_compare_config(cfg: DictConfig) -> None:
    """``video-eval-compare``: the bootstrap settings.

    Raises:
        InputError: a value outside its range.
    """
    check_bounds(cfg, COMPARE_BOUNDS)


def check_promote_config(cfg: DictConfig) -> None:
    """``video-eval-promote``: the bootstrap settings, alpha, the margin, guardrails, floors.

    Raises:
        InputError: a value outside its range.
    """
    check_bounds(cfg, PROMOTE_BOUNDS)
    _mapping_values(
        cfg,
        "promote.guardrails",
        "a finite drop >= 0 (the most the metric may fall)",
        at_least(0.0),
    )
    _mapping_values(cfg, "promote.floors", "a finite number", math.isfinite)


# Bytes per bootstrap resample and value: the float64 sample, and the sorted copy the
# percentile interval takes.
RESAMPLE_BYTES = 16
# Values kept per resample by task=episode (its intervals: accuracies, rates, coverage at each
# target); a generous bound.
EPISODE_VALUES_PER_RESAMPLE = 16


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.1f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.0f} MiB"


def check_memory(cfg: DictConfig, task: str) -> None:
    """Refuse config values whose own allocations exceed ``engine.memory_budget_mb``.

    The bootstrap keeps every resample's values (``n_resamples`` x values x 16 bytes: the
    samples and the sorted copy of the percentile interval): ``metrics.k_max`` values for
    task=poster (recall@k for every k), a few for task=episode. The sweep keeps
    ``k_max`` x tolerances x cosines counts. These do not depend on the inputs, so they are
    checked before the work instead of ending in a MemoryError.

    Raises:
        InputError: naming the keys, the memory needed and the budget.
    """
    budget_mb = int(OmegaConf.select(cfg, "engine.memory_budget_mb", default=1024))
    budget = budget_mb * 2**20
    if task == "poster":
        key = "metrics.bootstrap.n_resamples"
        k = int(OmegaConf.select(cfg, "metrics.k_max", default=10))
        per_resample, what = RESAMPLE_BYTES * k, f"with metrics.k_max={k}"
        if OmegaConf.select(cfg, "sweep.enabled", default=False):
            taus = len(OmegaConf.select(cfg, "sweep.time_tolerances_s", default=[]) or [])
            thetas = max(1, len(OmegaConf.select(cfg, "sweep.min_cosines", default=[]) or []))
            need = 2 * 8 * k * taus * thetas
            if need > budget:
                raise InputError(
                    f"config: the sweep ({taus} time tolerances x {thetas} cosines) with "
                    f"metrics.k_max={k} needs about {_gib(need)}, more than "
                    f"engine.memory_budget_mb={budget_mb}; use a coarser sweep grid, a smaller "
                    f"k_max, or raise engine.memory_budget_mb."
                )
    else:
        key = "episode.bootstrap.n_resamples"
        per_resample, what = RESAMPLE_BYTES * EPISODE_VALUES_PER_RESAMPLE, "(task=episode)"
    n = int(OmegaConf.select(cfg, key, default=0) or 0)
    if n * per_resample > budget:
        raise InputError(
            f"config: {key}={n} {what} needs about {_gib(n * per_resample)} for the resampled "
            f"values, more than engine.memory_budget_mb={budget_mb}; allowed here: at most "
            f"{budget // per_resample} resamples (or raise engine.memory_budget_mb)."
        )
