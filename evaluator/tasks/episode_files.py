"""The result files of one episode evaluation: the tables, the plots and report.html.

The episode counterpart of `evaluator.tasks.poster_files`; matplotlib is imported only where
plots are drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from evaluator.core.episode import EpisodeResult
from evaluator.core.episode_text import EpisodeTextResult
from evaluator.io.episode import EpisodeTable
from evaluator.io.outputs import Writer, write_json, write_parquet, write_text
from evaluator.report.episode_html import episode_report_writer
from evaluator.report.episode_tables import confusion_dict
from evaluator.tasks.episode_text import TEXT_TABLE, text_plot_writers
from evaluator.tasks.slicing import SliceOutputs

PLOT_FILE = "plots/risk_coverage.png"


@dataclass(frozen=True)
class EpisodeTables:
    """The tables of one evaluation: per video, the sweep, per group, the misreads, per slice."""

    videos: pd.DataFrame
    sweep: pd.DataFrame
    groups: pd.DataFrame | None
    misreads: pd.DataFrame | None
    slices: SliceOutputs | None

    def logged(self) -> dict[str, pd.DataFrame]:
        """The tables logged to MLflow (``mlflow.log_table``), by artifact name."""
        named = {
            "episode_videos.json": self.videos,
            "episode_sweep.json": self.sweep,
            "episode_groups.json": self.groups,
            "episode_text.json": self.misreads,
            "slices.json": None if self.slices is None else self.slices.table,
        }
        return {name: frame for name, frame in named.items() if frame is not None}


def result_files(
    cfg: DictConfig,
    table: EpisodeTable,
    result: EpisodeResult,
    text: EpisodeTextResult | None,
    metrics: dict[str, float],
    summary: dict[str, Any],
    tables: EpisodeTables,
    *,
    threshold: float,
    title: str,
) -> dict[str, Writer]:
    """The result files by path in the output folder (written all-or-nothing).

    Args:
        cfg: the run's config (``plots``, ``report.html``; written as config.yaml).
        table / result / text / metrics / summary / tables: the evaluation.
        threshold: ``episode.confidence_threshold``.
        title: the plots' and the report's title.
    """
    slice_out = tables.slices
    files: dict[str, Writer] = {
        "summary.json": write_json(summary),
        "episode_videos.parquet": write_parquet(tables.videos),
        "episode_sweep.parquet": write_parquet(tables.sweep),
        "confusion_matrix.json": write_json(confusion_dict(result.confusion)),
        "config.yaml": write_text(OmegaConf.to_yaml(cfg, resolve=True)),
    }
    if tables.groups is not None:
        files["episode_groups.parquet"] = write_parquet(tables.groups)
    if tables.misreads is not None:
        files[TEXT_TABLE] = write_parquet(tables.misreads)
    if cfg.plots:
        files[PLOT_FILE] = _plot_writer(result, metrics, threshold, title)
        cases = slice_out.table if slice_out else None
        files.update(text_plot_writers(text, result, cases, threshold=threshold, title=title))
    if slice_out is not None:
        files.update(slice_out.files)
    if OmegaConf.select(cfg, "report.html", default=False):
        # The report embeds the plots written before it in the same write_all.
        files["report.html"] = episode_report_writer(
            title,
            metrics,
            plots=[rel for rel in files if rel.endswith(".png")],
            cases=slice_out.table if slice_out else None,
            misreads=tables.misreads,
            case_columns=_case_columns(table, slice_out),
        )
    return files


def _plot_writer(
    result: EpisodeResult, metrics: dict[str, float], threshold: float, title: str
) -> Writer:
    def write(path: Path) -> None:
        from evaluator.report.episode_plots import plot_risk_coverage

        plot_risk_coverage(
            result.curve,
            path,
            threshold=threshold,
            at_threshold=(metrics["coverage"], metrics["auto_accuracy"]),
            at_target=result.coverage_at_accuracy[0],
            title=title,
        )

    return write


def _case_columns(table: EpisodeTable, slice_out: SliceOutputs | None) -> list[str]:
    """The report's case columns: the group column, then the slice columns."""
    columns = list(slice_out.videos.columns[1:]) if slice_out else []
    return [table.group_column, *columns] if table.group_column else columns
