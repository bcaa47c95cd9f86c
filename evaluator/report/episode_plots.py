"""Plots of one episode evaluation (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from evaluator.core.episode import CoverageAtAccuracy, RiskCoverageCurve

DPI = 110


def _label(ax: Any, xlabel: str, ylabel: str, title: str) -> None:
    """Axis labels, title, a light grid and the legend (lower left) of one panel."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)


def save_png(fig: Any, path: Path) -> None:
    """Write ``fig`` as a PNG (parent folders created) and free it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def mark_threshold(ax: Any, at: tuple[float, float], *, color: str, label: str) -> None:
    """The (coverage, auto_accuracy) point at the configured threshold, in percent; not drawn
    when nothing is automated there (no accuracy)."""
    cov, acc = at
    if cov > 0 and math.isfinite(acc):
        ax.plot(
            100 * cov,
            100 * acc,
            "o",
            color=color,
            markersize=9,
            zorder=5,
            label=f"{label}: coverage {cov:.1%}, accuracy {acc:.1%}",
        )


def plot_risk_coverage(
    curve: RiskCoverageCurve,
    path: Path,
    *,
    threshold: float,
    at_threshold: tuple[float, float],
    at_target: CoverageAtAccuracy,
    title: str,
) -> None:
    """The automation trade-off in two panels, written as a PNG.

    Left: auto-decision accuracy against coverage, one point per distinct confidence used as
    the threshold (moving right = a lower threshold = more videos decided alone), with the
    target accuracy as a dashed line, the configured threshold and the largest coverage that
    meets the target marked. Right: coverage and auto-decision accuracy against the
    threshold, with the configured threshold as a vertical line.

    Args:
        curve: The risk-coverage curve.
        path: Where to write the PNG (parent folders are created).
        threshold: The configured confidence threshold.
        at_threshold: (coverage, auto_accuracy) at the configured threshold.
        at_target: The coverage_at_accuracy result for the target accuracy.
        title: The figure title (e.g. the model and the input file).
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(12.5, 5.0))
    _accuracy_by_coverage(left, curve, threshold, at_threshold, at_target)
    _by_threshold(right, curve, threshold, 100.0 * at_target.target)
    fig.suptitle(title, fontsize=12)
    save_png(fig, path)


def _accuracy_by_coverage(
    ax: Any,
    curve: RiskCoverageCurve,
    threshold: float,
    at_threshold: tuple[float, float],
    at_target: CoverageAtAccuracy,
) -> None:
    """The left panel: the risk-coverage curve, the target, the threshold's point and the
    largest coverage that meets the target with its interval."""
    acc = 100.0 * curve.auto_accuracy
    target = 100.0 * at_target.target
    # One point per distinct confidence; coverage 0 has no accuracy, so the line starts there.
    ax.plot(100.0 * curve.coverage, acc, color="C0", linewidth=2, label="auto-decision accuracy")
    ax.axhline(
        target,
        color="C3",
        linestyle="--",
        linewidth=1.3,
        label=f"target accuracy {at_target.target:.1%}",
    )
    mark_threshold(ax, at_threshold, color="C1", label=f"threshold {threshold:g}")
    if at_target.n_auto > 0:
        ci = f" [{at_target.ci_low:.1%}, {at_target.ci_high:.1%}]"
        ax.plot(
            100 * at_target.coverage,
            100 * at_target.auto_accuracy,
            "D",
            color="C2",
            markersize=8,
            zorder=6,
            label=f"largest coverage at target: {at_target.coverage:.1%}{ci} "
            f"(threshold {at_target.threshold:.3g})",
        )
        ax.axvspan(
            100 * at_target.ci_low,
            100 * at_target.ci_high,
            color="C2",
            alpha=0.12,
            label=f"{at_target.ci_level:.0%} bootstrap interval of that coverage",
        )
    low = min(float(np.nanmin(acc)), target)
    ax.set_ylim(max(0.0, low - 0.1 * (100.5 - low) - 0.5), 100.5)
    ax.set_xlim(0, 100)
    _label(
        ax,
        "coverage (% of videos the model decides alone)",
        "auto-decision accuracy (% of those decisions right)",
        "Risk-coverage: lower the threshold, move right",
    )


def _by_threshold(ax: Any, curve: RiskCoverageCurve, threshold: float, target: float) -> None:
    """The right panel: coverage and auto-decision accuracy (percent) against the threshold."""
    # Below the lowest confidence nothing changes: carry the last point to threshold 0.
    thr = np.r_[curve.threshold, 0.0]
    for values, color, label in (
        (100.0 * curve.coverage, "C0", "coverage"),
        (100.0 * curve.auto_accuracy, "C1", "auto-decision accuracy"),
    ):
        ax.step(thr, np.r_[values, values[-1]], where="post", color=color, linewidth=2, label=label)
    ax.axvline(
        threshold,
        color="0.3",
        linestyle=":",
        linewidth=1.5,
        label=f"configured threshold {threshold:g}",
    )
    ax.axhline(target, color="C3", linestyle="--", linewidth=1.3, label="target accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 101)
    _label(
        ax,
        "confidence threshold (decide alone when confidence >= threshold)",
        "percent (of all videos / of automated decisions)",
        "Coverage and accuracy by threshold",
    )
