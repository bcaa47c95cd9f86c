"""The consensus policy's risk-coverage curve beside the single model's (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from evaluator.core.episode import RiskCoverageCurve
from evaluator.report.episode_plots import mark_threshold, save_png


def plot_consensus_risk_coverage(
    single: RiskCoverageCurve,
    consensus: RiskCoverageCurve,
    path: Path,
    *,
    threshold: float,
    single_at: tuple[float, float],
    consensus_at: tuple[float, float],
    title: str,
) -> None:
    """Auto-decision accuracy against coverage for the single model and for the consensus.

    One point per distinct confidence used as the threshold, for each policy; the consensus
    only decides videos whose two readings agree, so its curve stops at the share of agreeing
    videos. The configured threshold is marked on both curves.

    Args:
        single: The single model's curve (`evaluator.core.episode.risk_coverage_curve`).
        consensus: The consensus curve (`evaluator.core.episode_text.consensus_curve`).
        path: Where to write the PNG (parent folders are created).
        threshold: The configured confidence threshold.
        single_at / consensus_at: (coverage, auto_accuracy) of each policy at the threshold.
        title: The figure title.
    """
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    for curve, color, label in (
        (single, "C0", "single model: confidence >= threshold"),
        (consensus, "C3", "consensus: readings agree and confidence >= threshold"),
    ):
        if curve.coverage.size:  # the single model's curve is never empty
            ax.plot(100 * curve.coverage, 100 * curve.auto_accuracy, color=color, lw=2, label=label)
    for at, color, name in ((single_at, "C0", "single"), (consensus_at, "C3", "consensus")):
        mark_threshold(ax, at, color=color, label=f"{name} at threshold {threshold:g}")
    ax.set_xlim(0, 100)
    ax.set_xlabel("coverage (% of all videos decided without a human)")
    ax.set_ylabel("auto-decision accuracy (% of those decisions right)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    save_png(fig, path)
