"""Plots of one poster evaluation and of several side by side (matplotlib, no display)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from evaluator.core.matching import HIT, NO_PREDICTIONS
from evaluator.core.paired_stats import SweepDelta
from evaluator.core.poster import SweepResult

DPI = 110


@dataclass(frozen=True)
class Curve:
    """One model's recall@k curve with its interval band (NaN band = none)."""

    label: str
    recall: np.ndarray
    low: np.ndarray
    high: np.ndarray


def _save(fig: plt.Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def plot_recall_curves(
    curves: Sequence[Curve], path: Path, *, title: str, confidence: float | None
) -> None:
    """recall@k against k for one or more models, each with its bootstrap band."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for i, c in enumerate(curves):
        k = np.arange(1, c.recall.shape[0] + 1)
        color = f"C{i}"
        ax.plot(k, c.recall, marker="o", color=color, label=c.label, linewidth=2)
        if np.isfinite(c.low).any():
            ax.fill_between(k, c.low, c.high, color=color, alpha=0.18, linewidth=0)
        if len(curves) == 1:
            for x, y in zip(k, c.recall, strict=True):
                ax.annotate(
                    f"{y:.3f}",
                    (x, y),
                    textcoords="offset points",
                    xytext=(0, 7),
                    ha="center",
                    fontsize=8,
                )
    kmax = max(c.recall.shape[0] for c in curves)
    ax.set_xticks(np.arange(1, kmax + 1))
    ax.set_xlabel("k (number of model frames considered)")
    ax.set_ylabel("recall@k (share of eligible videos with a hit)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    band = f"; shaded: {confidence:.0%} bootstrap interval over videos" if confidence else ""
    ax.set_title(f"{title}{band}", fontsize=10)
    ax.legend(loc="lower right")
    _save(fig, path)


def _tolerance_line(
    taus: np.ndarray, values: np.ndarray, fmt: str, time_tolerance_s: float
) -> tuple[plt.Figure, Any]:
    """Time-only matching: one value per tolerance, annotated, configured tolerance marked."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    ax.plot(taus, values, marker="o", color="C0")
    for x, y in zip(taus, values, strict=True):
        ax.annotate(
            format(y, fmt),
            (x, y),
            textcoords="offset points",
            xytext=(0, 7),
            ha="center",
            fontsize=8,
        )
    ax.axvline(time_tolerance_s, color="red", linestyle="--", label="configured tolerance")
    ax.set_xlabel("time tolerance (s)")
    ax.grid(alpha=0.3)
    return fig, ax


def _grid_heatmap(
    values: np.ndarray,
    taus: np.ndarray,
    thetas: np.ndarray,
    *,
    cmap: str,
    vmin: float,
    vmax: float,
    cell_text: Callable[[float], tuple[str, str]],
    time_tolerance_s: float,
    min_cosine: float | None,
    box_color: str,
) -> tuple[plt.Figure, Any, Any, bool]:
    """A tolerance x cosine heatmap with a value in every cell and the configured cell boxed.

    ``cell_text(v)`` gives each cell's (text, colour). Returns (figure, axes, image, boxed).
    """
    fig, ax = plt.subplots(figsize=(max(8.0, 0.62 * len(thetas) + 2), 0.48 * len(taus) + 2.3))
    im = ax.imshow(values, aspect="auto", origin="lower", cmap=cmap, vmin=vmin, vmax=vmax)
    for i in range(len(taus)):
        for j in range(len(thetas)):
            text, color = cell_text(float(values[i, j]))
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(np.arange(len(thetas)), [f"{t:.2f}" for t in thetas], rotation=60, fontsize=8)
    ax.set_yticks(np.arange(len(taus)), [f"{t:g}" for t in taus], fontsize=8)
    ax.set_xlabel("minimum cosine similarity (theta)")
    ax.set_ylabel("time tolerance (s)")
    ti = np.flatnonzero(np.isclose(taus, time_tolerance_s))
    tj = (
        np.flatnonzero(np.isclose(thetas, min_cosine))
        if min_cosine is not None
        else np.zeros(0, dtype=np.int64)
    )
    boxed = bool(ti.size and tj.size)
    if boxed:
        ax.add_patch(
            plt.Rectangle(
                (tj[0] - 0.5, ti[0] - 0.5), 1, 1, fill=False, edgecolor=box_color, linewidth=2.5
            )
        )
    return fig, ax, im, boxed


def plot_sweep_heatmap(
    sweep: SweepResult,
    k: int,
    path: Path,
    *,
    time_tolerance_s: float,
    min_cosine: float | None,
    title: str,
) -> None:
    """recall@k over the (tolerance x min cosine) grid, values in cells, configured point boxed."""
    values = sweep.recall[:, :, k - 1]
    taus = sweep.time_tolerances_s
    if min_cosine is None:
        fig, ax = _tolerance_line(taus, values[:, 0], ".3f", time_tolerance_s)
        ax.set_ylabel(f"recall@{k}")
        ax.set_ylim(0, 1.05)
        ax.legend(loc="lower right")
        ax.set_title(f"{title}: recall@{k} by time tolerance (time-only matching)", fontsize=10)
        _save(fig, path)
        return
    fig, ax, im, boxed = _grid_heatmap(
        values,
        taus,
        sweep.min_cosines,
        cmap="viridis",
        vmin=0.0,
        vmax=1.0,
        cell_text=lambda v: (f"{v:.2f}", "white" if v < 0.55 else "black"),
        time_tolerance_s=time_tolerance_s,
        min_cosine=min_cosine,
        box_color="red",
    )
    marked = (
        f"\nred box: configured thresholds (tolerance {time_tolerance_s:g} s, "
        f"min cosine {min_cosine:g})"
        if boxed
        else ""
    )
    fig.colorbar(im, ax=ax, label=f"recall@{k}")
    ax.set_title(f"{title}: recall@{k} over the threshold grid{marked}", fontsize=10)
    _save(fig, path)


def plot_pairs(
    miss_reason: np.ndarray,
    nearest_dt: np.ndarray,
    nearest_cosine: np.ndarray,
    path: Path,
    *,
    time_tolerance_s: float,
    min_cosine: float | None,
    title: str,
) -> None:
    """Per eligible video, its nearest pair: time gap against cosine, hits vs misses.

    For a hit the pair is the one behind the first hit; for a miss it is the pair that came
    closest (most similar among those close enough in time, else the closest in time among
    those similar enough, else the most similar), so the plot shows whether misses fail on
    time or on similarity.

    Args:
        miss_reason / nearest_dt / nearest_cosine: per eligible video (`VideoMatches`).
    """
    has_pair = miss_reason != NO_PREDICTIONS
    hit = miss_reason == HIT
    dt = nearest_dt
    n_silent = int((~has_pair).sum())
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    if min_cosine is None:
        top = max(float(np.nanmax(dt[has_pair], initial=1.0)), time_tolerance_s) * 1.05
        bins = [float(b) for b in np.linspace(0, top, 40)]
        ax.hist(
            [dt[has_pair & hit], dt[has_pair & ~hit]],
            bins=bins,
            stacked=True,
            color=["tab:green", "tab:red"],
            label=["hit", "miss"],
        )
        ax.axvline(
            time_tolerance_s,
            color="black",
            linestyle="--",
            label=f"tolerance {time_tolerance_s:g} s",
        )
        ax.set_xlabel("time gap of the nearest pair (s)")
        ax.set_ylabel("videos")
    else:
        cos = nearest_cosine
        for mask, color, label in (
            (has_pair & hit, "tab:green", "hit"),
            (has_pair & ~hit, "tab:red", "miss"),
        ):
            ax.scatter(
                dt[mask],
                cos[mask],
                s=10,
                alpha=0.55,
                color=color,
                label=f"{label} ({int(mask.sum())})",
                linewidths=0,
            )
        ax.axvline(
            time_tolerance_s,
            color="black",
            linestyle="--",
            label=f"tolerance {time_tolerance_s:g} s",
        )
        ax.axhline(min_cosine, color="black", linestyle=":", label=f"min cosine {min_cosine:g}")
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlim(left=-0.05)
        ax.set_xlabel("time gap |t_model - t_expert| of the nearest pair (s, log scale above 1 s)")
        ax.set_ylabel("cosine similarity of the nearest pair")
        ax.set_ylim(min(-0.05, float(np.nanmin(cos[has_pair], initial=0.0)) - 0.05), 1.05)
    ax.grid(alpha=0.3)
    silent = f"; {n_silent} videos without predictions not shown" if n_silent else ""
    ax.set_title(f"{title}: nearest model/expert pair per video{silent}", fontsize=10)
    ax.legend(loc="lower left", fontsize=8)
    _save(fig, path)


def plot_sweep_delta(
    sweep: SweepDelta,
    k: int,
    path: Path,
    *,
    time_tolerance_s: float,
    min_cosine: float | None,
    title: str,
) -> None:
    """recall@k of candidate minus baseline over the threshold grid, in points (x100).

    Blue cells: the candidate is better there; red: worse; white: equal. The configured point
    is boxed, so a reader sees whether a gain holds across the grid or only at that point.
    """
    delta = 100.0 * sweep.delta
    taus, thetas = sweep.time_tolerances_s, sweep.min_cosines
    n_cells = delta.size
    verdict = (
        f"candidate better at {sweep.n_better} of {n_cells} grid points, worse at "
        f"{sweep.n_worse}, equal at {n_cells - sweep.n_better - sweep.n_worse}"
    )
    if np.isnan(thetas).all():
        fig, ax = _tolerance_line(taus, delta[:, 0], "+.1f", time_tolerance_s)
        ax.axhline(0.0, color="black", linewidth=1)
        ax.set_ylabel(f"delta recall@{k} (points, candidate - baseline)")
        ax.legend(loc="best")
        ax.set_title(f"{title}: delta recall@{k} by time tolerance\n{verdict}", fontsize=10)
        _save(fig, path)
        return
    bound = max(float(np.nanmax(np.abs(delta), initial=0.0)), 0.5)
    fig, ax, im, boxed = _grid_heatmap(
        delta,
        taus,
        thetas,
        cmap="RdBu",
        vmin=-bound,
        vmax=bound,
        cell_text=lambda v: (
            f"{v:+.1f}" if v else "0",
            "white" if abs(v) > 0.6 * bound else "black",
        ),
        time_tolerance_s=time_tolerance_s,
        min_cosine=min_cosine,
        box_color="black",
    )
    marked = (
        f"; black box: configured point ({time_tolerance_s:g} s, {min_cosine:g})" if boxed else ""
    )
    fig.colorbar(im, ax=ax, label=f"delta recall@{k} (points; blue = candidate better)")
    ax.set_title(
        f"{title}: recall@{k} candidate - baseline over the threshold grid\n{verdict}{marked}",
        fontsize=10,
    )
    _save(fig, path)


def plot_delta_curve(
    delta: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    path: Path,
    *,
    title: str,
    confidence: float,
) -> None:
    """delta recall@k (candidate - baseline) against k with its paired bootstrap band."""
    k = np.arange(1, delta.shape[0] + 1)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    ax.axhline(0.0, color="black", linewidth=1)
    ax.plot(k, 100 * delta, marker="o", color="C0", linewidth=2, label="candidate - baseline")
    ax.fill_between(k, 100 * low, 100 * high, color="C0", alpha=0.2, linewidth=0)
    ax.set_xticks(k)
    ax.set_xlabel("k (number of model frames considered)")
    ax.set_ylabel("delta recall@k (points)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    ax.set_title(
        f"{title}; shaded: {confidence:.0%} paired bootstrap interval (videos resampled jointly)",
        fontsize=10,
    )
    _save(fig, path)
