"""Metrics per slice for one evaluation: config -> slice metadata -> per-slice numbers -> files.

Both tasks call this with their per-video results (poster: the match table's eligible videos
and their first-hit ranks; episode: the per-video correctness), never with frame-level data.
What it records (see docs/slices.md):

- ``slices.parquet``: one row per (column, value) with ``metric_key``, ``n_videos`` and the
  task's metrics per slice (also logged with ``mlflow.log_table`` as ``slices.json``);
- ``slice_videos.parquet``: every evaluated video's slice per column, as evaluated, so that
  ``video-eval-compare`` / ``video-eval-promote`` align two evaluations by the metadata;
- MLflow metrics ``slice/<column>/<value>/<metric>`` (values made safe for metric names);
- ``plots/slices_<metric>.png``: the forest plot, shown in the HTML report;
- ``summary.json["slices"]``: the settings and the counts of unmatched rows and videos.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from evaluator.core.episode_inputs import Videos
from evaluator.core.episode_text import (
    CONSENSUS_METRICS,
    EpisodeTextResult,
    grouped_text_intervals,
    grouped_text_metrics,
)
from evaluator.core.slices import (
    SliceAssignment,
    assign_slices,
    episode_slice_metrics,
    poster_slice_metrics,
    slice_intervals,
)
from evaluator.errors import InputError
from evaluator.io.outputs import Writer, write_parquet
from evaluator.io.slices import SliceTable, load_slice_table
from evaluator.report.slices import plot_forest, slice_rows, slice_videos_frame


@dataclass(frozen=True)
class SliceSettings:
    """The checked ``data.slices`` / ``slices`` settings."""

    path: Path
    columns: tuple[str, ...] | None
    bins: dict[str, tuple[float, ...]]
    categorical: tuple[str, ...]
    min_videos: int


def _edges(name: str, edges: Any) -> tuple[float, ...]:
    if not isinstance(edges, list | tuple) or not edges:
        raise InputError(
            f"config: slices.bins.{name} must be a list of bin edges such as [0, 600, 1800, "
            f"inf], got {edges!r}."
        )
    try:
        return tuple(float(e) for e in edges)
    except (TypeError, ValueError):
        raise InputError(
            f"config: slices.bins.{name} must hold numbers (inf / -inf allowed), got {edges!r}."
        ) from None


def slice_settings(cfg: DictConfig) -> SliceSettings | None:
    """The slice settings, or None without ``data.slices``.

    Raises:
        InputError: a malformed ``slices.*`` value, naming the key.
    """
    path = OmegaConf.select(cfg, "data.slices", default=None)
    if not path:
        return None
    node = OmegaConf.select(cfg, "slices", default=None)
    raw = OmegaConf.to_container(node, resolve=True) if node is not None else {}
    assert isinstance(raw, dict)
    bins_raw = raw.get("bins") or {}
    if not isinstance(bins_raw, dict):
        raise InputError(
            f"config: slices.bins must map columns to bin edges, e.g. "
            f"slices.bins={{duration_s: [0, 600, 1800, inf]}}, got {bins_raw!r}."
        )
    columns = raw.get("columns")
    min_videos = raw.get("min_videos", 30)
    if isinstance(min_videos, bool) or not isinstance(min_videos, int) or min_videos < 1:
        raise InputError(f"config: slices.min_videos must be an integer >= 1, got {min_videos!r}.")
    return SliceSettings(
        path=Path(str(path)),
        columns=None if columns is None else tuple(str(c) for c in columns),
        bins={str(k): _edges(str(k), v) for k, v in bins_raw.items()},
        categorical=tuple(str(c) for c in raw.get("categorical") or ()),
        min_videos=int(min_videos),
    )


@dataclass(frozen=True)
class LoadedSlices:
    """Validated slice metadata and its settings."""

    settings: SliceSettings
    table: SliceTable


def load_slices(cfg: DictConfig) -> LoadedSlices | None:
    """Read and validate ``data.slices`` (None when not given).

    Raises:
        InputError: bad settings or a bad slices file.
    """
    settings = slice_settings(cfg)
    if settings is None:
        return None
    table = load_slice_table(
        settings.path,
        columns=settings.columns,
        bins=settings.bins,
        categorical=settings.categorical,
    )
    return LoadedSlices(settings, table)


@dataclass(frozen=True)
class SliceOutputs:
    """Everything one evaluation records about its slices.

    Attributes:
        table: ``slices.parquet``, one row per (column, value).
        videos: ``slice_videos.parquet``, one row per evaluated video.
        metrics: the MLflow metrics ``slice/<column>/<value>/<metric>`` and the two counts.
        summary: ``summary.json["slices"]``.
        files: relative path -> writer (the two tables, the forest plot).
        plot: the forest plot's relative path, or None.
        params: the run params ``slices.*`` (read back by compare / promote).
        forest: what the forest plot is drawn from (handed to the drawing worker), or None.
    """

    table: pd.DataFrame
    videos: pd.DataFrame
    metrics: dict[str, float]
    summary: dict[str, Any]
    files: dict[str, Writer]
    plot: str | None
    params: dict[str, str]
    forest: SliceForest | None = None

    @property
    def data_files(self) -> dict[str, Writer]:
        """The files other than the forest plot (the tables)."""
        return {rel: w for rel, w in self.files.items() if rel != self.plot}


@dataclass(frozen=True)
class SliceForest:
    """The forest plot of one per-slice metric: its table and texts (a plain value, drawn later)."""

    table: pd.DataFrame
    column: str
    label: str
    reference: tuple[float, float, float] | None
    min_videos: int

    def draw(self, path: Path) -> None:
        plot_forest(
            self.table,
            self.column,
            f"{self.column}_ci_low",
            f"{self.column}_ci_high",
            path,
            title=f"{self.label}: {self.column} per slice",
            xlabel=f"{self.column} (bars: bootstrap interval over the slice's videos)",
            reference=self.reference,
        )


def _assign(loaded: LoadedSlices, ids: np.ndarray) -> SliceAssignment:
    t = loaded.table
    return assign_slices(
        ids,
        t.video_id,
        [c.name for c in t.columns],
        [c.codes for c in t.columns],
        [c.values for c in t.columns],
        [c.segments for c in t.columns],
    )


def _outputs(
    loaded: LoadedSlices,
    ids: np.ndarray,
    known_ids: np.ndarray,
    assignment: SliceAssignment,
    table: pd.DataFrame,
    metric_names: Mapping[str, str],
    forest: tuple[str, str, tuple[float, float, float] | None] | None,
) -> SliceOutputs:
    s = loaded.settings
    metrics: dict[str, float] = {}
    for suffix, column in metric_names.items():
        values = table[column].to_numpy(np.float64)
        for key, v in zip(table["metric_key"], values, strict=True):
            if math.isfinite(v):
                metrics[f"{key}/{suffix}"] = float(v)
    n_unknown = int((~np.isin(loaded.table.video_id.astype(str), known_ids.astype(str))).sum())
    metrics["n_slice_rows_unknown_videos"] = float(n_unknown)
    metrics["n_videos_without_slice_metadata"] = float(assignment.n_unmatched)
    summary = {
        "file": str(s.path),
        "columns": list(assignment.columns),
        # inf as text: JSON has no infinity.
        "bins": {k: [e if math.isfinite(e) else str(e) for e in v] for k, v in s.bins.items()},
        "categorical": list(s.categorical),
        "min_videos": s.min_videos,
        "n_metadata_rows": loaded.table.n_rows,
        "n_slice_rows_unknown_videos": n_unknown,
        "n_videos_without_slice_metadata": assignment.n_unmatched,
        "n_videos_missing_per_column": dict(
            zip(assignment.columns, assignment.n_missing, strict=True)
        ),
        "n_slices": len(table),
        "n_slices_gated": int(table["gated"].sum()),
    }
    videos = slice_videos_frame(ids, assignment)
    files: dict[str, Writer] = {
        "slices.parquet": write_parquet(table),
        "slice_videos.parquet": write_parquet(videos),
    }
    plot = drawing = None
    if forest is not None:
        column, label, reference = forest
        plot = f"plots/slices_{column}.png"
        drawing = SliceForest(table, column, label, reference, s.min_videos)
        files[plot] = drawing.draw
    return SliceOutputs(table, videos, metrics, summary, files, plot, slice_params(loaded), drawing)


def poster_slices(
    loaded: LoadedSlices,
    match_table: pd.DataFrame,
    *,
    k_max: int,
    bootstrap: Any,
    overall: tuple[float, float, float] | None,
    label: str,
    plots: bool,
) -> SliceOutputs:
    """recall@1..K, MRR@K and the recall@K interval per slice of the eligible videos.

    Args:
        loaded: the slice metadata.
        match_table: the evaluation's match table (video_id, eligible, first_hit_rank).
        k_max: K.
        bootstrap: ``metrics.bootstrap`` (n_resamples, confidence, seed); n_resamples 0 =
            no intervals.
        overall: recall@K of all eligible videos with its interval (the plot's reference).
        label: the model's name (plot title).
        plots: write the forest plot.
    """
    eligible = match_table["eligible"].astype("boolean").fillna(False).to_numpy(bool)
    rows = match_table[eligible]
    ids = rows["video_id"].astype(str).to_numpy(dtype=object)
    rank = rows["first_hit_rank"].astype("Float64").fillna(0).to_numpy(np.int64)
    assignment = _assign(loaded, ids)
    parts = []
    n_resamples = int(bootstrap.n_resamples)
    for c, values in enumerate(assignment.values):
        codes = assignment.codes[:, c]
        m = poster_slice_metrics(rank, codes, len(values), k_max)
        part = {f"recall_at_{k}": m.recall[:, k - 1] for k in range(1, k_max + 1)}
        part[f"mrr_at_{k_max}"] = m.mrr
        low = high = np.full(len(values), np.nan)
        if n_resamples > 0:
            low, high = slice_intervals(
                ((rank >= 1) & (rank <= k_max)).astype(np.float64),
                codes,
                len(values),
                n_resamples=n_resamples,
                confidence=float(bootstrap.confidence),
                seed=int(bootstrap.seed),
            )
        part[f"recall_at_{k_max}_ci_low"] = low
        part[f"recall_at_{k_max}_ci_high"] = high
        parts.append(pd.DataFrame(part))
    table = pd.concat(
        [slice_rows(assignment, loaded.settings.min_videos), pd.concat(parts, ignore_index=True)],
        axis=1,
    )
    k = f"recall_at_{k_max}"
    names = {k: k, f"mrr_at_{k_max}": f"mrr_at_{k_max}", "n_videos": "n_videos"}
    forest = (k, label, overall) if plots else None
    return _outputs(
        loaded,
        ids,
        match_table["video_id"].astype(str).to_numpy(),
        assignment,
        table,
        names,
        forest,
    )


def episode_slices(
    loaded: LoadedSlices,
    video_ids: np.ndarray,
    videos: Videos,
    *,
    threshold: float,
    target: float,
    target_name: str,
    bootstrap: Any,
    overall: tuple[float, float, float] | None,
    label: str,
    plots: bool,
    text: EpisodeTextResult | None = None,
) -> SliceOutputs:
    """Accuracy, mismatch precision / recall, coverage and coverage-at-accuracy per slice.

    Args:
        loaded: the slice metadata.
        video_ids: the evaluated videos, aligned with ``videos``.
        videos: the validated per-video values.
        threshold: the confidence threshold of the automated decisions.
        target / target_name: the target accuracy and its metric name
            (``coverage_at_accuracy_0.99``).
        bootstrap: ``episode.bootstrap`` settings (interval of the accuracy per slice).
        overall: episode_accuracy of all videos with its interval, or None.
        label: the model's name.
        plots: write the forest plot.
        text: the text side of the evaluation (`evaluator.core.episode_text`), or None: adds
            ``text_cer`` and ``text_exact_match`` with their intervals and ``n_text_videos``
            (with ``text_true``) and the consensus columns (with ``text_episode``) per slice.
    """
    ids = np.asarray(video_ids).astype(str).astype(object)
    assignment = _assign(loaded, ids)
    parts = []
    for c, values in enumerate(assignment.values):
        codes = assignment.codes[:, c]
        m = episode_slice_metrics(videos, codes, len(values), threshold=threshold, target=target)
        low, high = slice_intervals(
            videos.episode_correct.astype(np.float64),
            codes,
            len(values),
            n_resamples=int(bootstrap.n_resamples),
            confidence=float(bootstrap.confidence),
            seed=int(bootstrap.seed),
        )
        parts.append(
            pd.DataFrame(
                {
                    "episode_accuracy": m.episode_accuracy,
                    "episode_accuracy_ci_low": low,
                    "episode_accuracy_ci_high": high,
                    "mismatch_precision": m.mismatch_precision,
                    "mismatch_recall": m.mismatch_recall,
                    "coverage": m.coverage,
                    "auto_accuracy": m.auto_accuracy,
                    target_name: m.coverage_at_accuracy,
                    **_text_columns(text, videos, codes, len(values), threshold, bootstrap),
                }
            )
        )
    table = pd.concat(
        [slice_rows(assignment, loaded.settings.min_videos), pd.concat(parts, ignore_index=True)],
        axis=1,
    )
    names = {
        "episode_accuracy": "episode_accuracy",
        "mismatch_precision": "mismatch_precision",
        "mismatch_recall": "mismatch_recall",
        target_name: target_name,
        "n_videos": "n_videos",
        **{name: name for name in parts[0].columns if name in TEXT_SLICE_METRICS},
    }
    forest = ("episode_accuracy", label, overall) if plots else None
    return _outputs(loaded, ids, ids, assignment, table, names, forest)


# The text and consensus columns of slices.parquet also logged as slice/<column>/<value>/<name>.
TEXT_SLICE_METRICS = ("text_cer", "text_exact_match", "n_text_videos", *CONSENSUS_METRICS)


def _text_columns(
    text: EpisodeTextResult | None,
    videos: Videos,
    codes: np.ndarray,
    n_groups: int,
    threshold: float,
    bootstrap: Any,
) -> dict[str, np.ndarray]:
    """The text and consensus columns of one slice column (none without text)."""
    if text is None:
        return {}
    out = grouped_text_metrics(
        videos, text.reads, text.readings, codes, n_groups, threshold=threshold
    )
    if text.reads is not None:
        out.update(
            grouped_text_intervals(
                text.reads,
                codes,
                n_groups,
                n_resamples=int(bootstrap.n_resamples),
                ci_level=float(bootstrap.confidence),
                seed=int(bootstrap.seed),
            )
        )
    return out


def slice_params(loaded: LoadedSlices) -> dict[str, str]:
    """The run params of the slice settings (``slices.*``)."""
    s = loaded.settings
    return {
        "slices.columns": ",".join(c.name for c in loaded.table.columns),
        "slices.bins": str({k: list(v) for k, v in s.bins.items()}),
        "slices.categorical": ",".join(s.categorical),
        "slices.min_videos": str(s.min_videos),
    }


def slices_line(summary: dict[str, Any]) -> str | None:
    """The printed line about the slices of an evaluation (None without slices)."""
    s = summary.get("slices")
    if not s:
        return None
    return (
        f"  slices: {s['n_slices']} in {len(s['columns'])} column(s) ({s['n_slices_gated']} with "
        f">= {s['min_videos']} videos) in slices.parquet; "
        f"{s['n_videos_without_slice_metadata']} scored videos without metadata -> "
        f"(missing), {s['n_slice_rows_unknown_videos']} metadata rows for unknown videos ignored"
    )
