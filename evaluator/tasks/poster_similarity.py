"""``matching.center`` and the ``calibration`` group: settings, figures, warning, summary.

The numbers come from `evaluator.core.calibration`; this module reads the config, turns the
figures into the run's metrics and summary entry, and words the warning shown on the console,
in the log and in the report when ``matching.min_cosine`` barely filters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from evaluator.config_checks import check_center
from evaluator.core.calibration import Calibration, calibrate, center_digest
from evaluator.engines.local import Scored

log = logging.getLogger("evaluator")

CALIBRATION_METRICS = (
    "cosine_false_match_rate",
    "cosine_unrelated_q99",
    "cosine_unrelated_median",
)


@dataclass(frozen=True)
class SimilarityOptions:
    """``matching.center`` and ``calibration.*``, checked.

    Attributes:
        center: ``off`` or ``experts``.
        max_pairs: unrelated pairs computed at most (a uniform sample beyond).
        seed: the sample's seed.
        warn_rate: the false match rate above which the run warns.
    """

    center: str = "off"
    max_pairs: int = 1_000_000
    seed: int = 0
    warn_rate: float = 0.05


def similarity_options(cfg: DictConfig) -> SimilarityOptions:
    """The checked options of ``cfg`` (absent keys take their defaults).

    Raises:
        InputError: an unknown ``matching.center``, or ``matching.center=experts`` with
            ``engine=spark`` (not supported there).
    """
    d = SimilarityOptions()
    center = check_center(cfg)
    return SimilarityOptions(
        center=center,
        max_pairs=int(OmegaConf.select(cfg, "calibration.max_pairs", default=d.max_pairs)),
        seed=int(OmegaConf.select(cfg, "calibration.seed", default=d.seed)),
        warn_rate=float(OmegaConf.select(cfg, "calibration.warn_rate", default=d.warn_rate)),
    )


def calibration_of(scored: Scored, options: SimilarityOptions) -> Calibration | None:
    """The calibration figures of a scored evaluation with vectors (None when time-only)."""
    min_cosine = scored.finished.result.settings.min_cosine
    pool = scored.finished.pool
    if min_cosine is None or pool is None:
        return None
    return calibrate(
        pool,
        min_cosine=min_cosine,
        center=scored.center,
        max_pairs=options.max_pairs,
        seed=options.seed,
    )


def calibration_metrics(calibration: Calibration) -> dict[str, float]:
    """The three logged figures (NaN when the pool has no unrelated pair)."""
    return {
        "cosine_false_match_rate": calibration.false_match_rate,
        "cosine_unrelated_q99": calibration.q99,
        "cosine_unrelated_median": calibration.median,
    }


def calibration_warning(calibration: Calibration, options: SimilarityOptions) -> str | None:
    """The warning when the false match rate exceeds ``calibration.warn_rate``, else None."""
    if not calibration.warns(options.warn_rate):
        return None
    c = calibration
    pairs = f"a sample of {c.n_pairs:,} of {c.n_pairs_total:,}" if c.sampled else f"{c.n_pairs:,}"
    hint = "" if options.center == "experts" else "; or try matching.center=experts"
    return (
        f"matching.min_cosine={c.min_cosine:g} barely filters: {c.false_match_rate:.1%} of "
        f"unrelated pairs (expert frames of two different videos; {pairs} pairs) have a cosine "
        f">= {c.min_cosine:g} (calibration.warn_rate={options.warn_rate:g}). "
        f"matching.min_cosine={c.q99:.3f} (their 99th percentile) would pass 1 % of them"
        f"{hint} (see docs/embeddings.md)."
    )


def calibration_summary(calibration: Calibration, options: SimilarityOptions) -> dict[str, Any]:
    """The ``calibration`` entry of summary.json."""
    c = calibration
    return {
        "center": options.center,
        "min_cosine": c.min_cosine,
        "n_frames": c.n_frames,
        "n_pairs_total": c.n_pairs_total,
        "n_pairs": c.n_pairs,
        "sampled": c.sampled,
        "max_pairs": options.max_pairs,
        "seed": options.seed,
        "warn_rate": options.warn_rate,
        **calibration_metrics(c),
    }


@dataclass(frozen=True)
class SimilarityOutputs:
    """What the similarity settings add to an evaluation's record.

    Attributes:
        digest: the dataset digest with the centring folded in (`center_digest`).
        calibration: the figures, or None when time-only.
        metrics: the three logged figures (empty when time-only).
        summary: summary.json entries: ``calibration`` and, above warn_rate, ``warnings``.
        center: ``matching.center`` (summary.json ``settings.center``).
    """

    digest: str
    calibration: Calibration | None
    metrics: dict[str, float]
    summary: dict[str, Any]
    center: str


def similarity_outputs(scored: Scored, cfg: DictConfig) -> SimilarityOutputs:
    """The calibration of ``scored`` and its record; the warning goes to the console and log."""
    options = similarity_options(cfg)
    calibration = calibration_of(scored, options)
    # The centring changes every cosine: runs with and without it are not compared.
    time_only = scored.finished.result.settings.min_cosine is None
    digest = center_digest(scored.finished.digest, "off" if time_only else options.center)
    if calibration is None:
        return SimilarityOutputs(digest, None, {}, {}, options.center)
    summary: dict[str, Any] = {"calibration": calibration_summary(calibration, options)}
    warning = calibration_warning(calibration, options)
    if warning is not None:
        summary["warnings"] = [warning]
        log.warning(warning)  # Hydra's handlers show it on the console and write it to the log
    return SimilarityOutputs(
        digest, calibration, calibration_metrics(calibration), summary, options.center
    )
