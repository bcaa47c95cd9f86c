"""``plots/cosine_calibration.png``: unrelated pairs against time-candidate pairs.

Two histograms over the same bins (each normalised to its own total): the cosines of unrelated
pairs (expert frames of two different videos) and those of the time-candidate pairs (model and
expert frames of one video within the time tolerance), with ``matching.min_cosine`` and the
unrelated pairs' 99th percentile drawn on them. When most of the unrelated histogram lies to the
right of ``min_cosine``, the threshold filters almost nothing.

matplotlib is imported when the plot is drawn (in the drawing worker).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evaluator.core.calibration import COSINE_BINS, Calibration
from evaluator.io.outputs import Writer


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros(counts.shape)


def plot_cosine_calibration(calibration: Calibration, path: Path, *, title: str) -> None:
    """Draw the calibration plot of ``calibration`` to ``path`` (PNG)."""
    from evaluator.report.plots import DPI, plt

    c = calibration
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    pairs = f"{c.n_pairs:,}" + (f" sampled of {c.n_pairs_total:,}" if c.sampled else "")
    ax.stairs(
        _shares(c.unrelated_counts),
        COSINE_BINS,
        fill=True,
        alpha=0.45,
        color="tab:red",
        label=f"unrelated pairs (different videos; {pairs})",
    )
    ax.stairs(
        _shares(c.candidate_counts),
        COSINE_BINS,
        linewidth=1.6,
        color="tab:blue",
        label=f"time-candidate pairs ({int(c.candidate_counts.sum()):,})",
    )
    ax.axvline(c.min_cosine, color="black", linewidth=1.4, label=f"min_cosine = {c.min_cosine:g}")
    if np.isfinite(c.q99):
        ax.axvline(
            c.q99,
            color="tab:red",
            linestyle="--",
            linewidth=1.0,
            label=f"unrelated q99 = {c.q99:.3f}",
        )
    ax.set_xlim(-1.0, 1.0)
    ax.set_xlabel("cosine similarity (vectors as matched)")
    ax.set_ylabel("share of pairs per 0.01 bin")
    rate = "n/a" if not np.isfinite(c.false_match_rate) else f"{c.false_match_rate:.1%}"
    ax.set_title(f"{title}: {rate} of unrelated pairs reach min_cosine", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def calibration_plot_writer(calibration: Calibration, label: str) -> Writer:
    """A writer of the calibration plot (for `evaluator.io.outputs.write_all`)."""

    def write(path: Path) -> None:
        plot_cosine_calibration(calibration, path, title=label)

    return write
