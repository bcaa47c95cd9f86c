"""One episode evaluation, end to end: config -> io -> core -> report -> outputs -> MLflow.

The same shape as :mod:`evaluator.tasks.poster`: inputs are validated and every number computed
before anything is written; the result files are written all-or-nothing; the MLflow run is
created last and always ends FINISHED or FAILED.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from evaluator import __version__
from evaluator.core.digest import episode_set_digest
from evaluator.core.episode import (
    EpisodeResult,
    accuracy_metric_suffix,
    curve_at_thresholds,
    evaluate_episodes,
)
from evaluator.core.episode_inputs import AUTO_ACCEPT, AUTO_FLAG, HUMAN_REVIEW, episode_videos
from evaluator.core.episode_text import COUNT_METRICS as TEXT_COUNT_METRICS
from evaluator.core.episode_text import EpisodeTextResult
from evaluator.engines import engine_name
from evaluator.errors import InputError
from evaluator.io.episode import EpisodeTable, load_episode_table
from evaluator.io.outputs import write_all
from evaluator.lifecycle import checkpoint
from evaluator.report.episode_tables import (
    confusion_dict,
    episode_video_table,
    group_frame,
    sweep_frame,
)
from evaluator.tasks.episode_files import EpisodeTables, result_files
from evaluator.tasks.episode_text import (
    evaluate_table_text,
    group_text_columns,
    misreads_frame,
    with_text_columns,
)
from evaluator.tasks.params import flat_params
from evaluator.tasks.slicing import SliceOutputs, episode_slices, load_slices
from evaluator.tracking.datasets import FileDataset
from evaluator.tracking.mlflow_run import (
    RecordedRun,
    RunRecord,
    artifact_list,
    evaluation_tags,
    record_evaluation,
    run_name_for,
)
from evaluator.tracking.records import table_files_of

# Stepped metrics: the automation at thresholds 0.00, 0.01, ..., 1.00, logged with
# step = round(100 * threshold), so the MLflow chart view overlays runs on the same x-axis.
STEPPED_THRESHOLDS = np.round(np.arange(101) / 100.0, 2)
STEPPED_METRICS = {
    "coverage_at_threshold": "coverage",
    "auto_accuracy_at_threshold": "auto_accuracy",
    "n_missed_mismatches_auto_accepted_at_threshold": "n_missed_mismatches_auto_accepted",
}
COUNT_METRICS = (
    "n_videos",
    "n_missed_mismatches_auto_accepted",
    "n_false_flags_auto",
    "n_auto_accept",
    "n_auto_flag",
    "n_human_review",
    "n_flagged",
    "n_true_mismatches",
    *TEXT_COUNT_METRICS,
)


@dataclass(frozen=True)
class EpisodeSettings:
    """The checked episode settings of one evaluation."""

    confidence_threshold: float
    target_accuracy: float
    group_by: str | None
    n_resamples: int
    ci_level: float
    seed: int

    @property
    def target_name(self) -> str:
        """``coverage_at_accuracy_{p}`` for the target p."""
        return f"coverage_at_accuracy_{accuracy_metric_suffix(self.target_accuracy)}"


@dataclass(frozen=True)
class EpisodeOutcome:
    """What one episode evaluation produced.

    Attributes:
        result: the numbers (core result).
        summary: the content of summary.json.
        video_table: the per-video table (episode_videos.parquet).
        sweep: the risk-coverage curve as a table (episode_sweep.parquet).
        groups: the per-group breakdown (episode_groups.parquet), or None.
        settings: the settings it ran with.
        output_dir: where the result files were written.
        files: the result files written.
        run: the MLflow run, or None when tracking was off.
    """

    result: EpisodeResult
    summary: dict[str, Any]
    video_table: pd.DataFrame
    sweep: pd.DataFrame
    groups: pd.DataFrame | None
    settings: EpisodeSettings
    output_dir: Path
    files: list[Path]
    run: RecordedRun | None


def episode_settings(cfg: DictConfig) -> EpisodeSettings:
    """Turn the ``episode`` config group into plain, checked settings.

    Raises:
        InputError: a value outside its allowed range, naming the config key.
    """
    e = cfg.episode
    threshold = float(e.confidence_threshold)
    if not 0.0 <= threshold <= 1.0:
        raise InputError(
            f"config: episode.confidence_threshold must be in [0, 1] (confidences are), got "
            f"{e.confidence_threshold}."
        )
    target = float(e.target_accuracy)
    if not 0.0 < target <= 1.0:
        raise InputError(
            f"config: episode.target_accuracy must be in (0, 1], got {e.target_accuracy}."
        )
    n_resamples = int(e.bootstrap.n_resamples)
    if n_resamples < 1:
        raise InputError(f"config: episode.bootstrap.n_resamples must be >= 1, got {n_resamples}.")
    level = float(e.bootstrap.confidence)
    if not 0.0 < level < 1.0:
        raise InputError(f"config: episode.bootstrap.confidence must be in (0, 1), got {level}.")
    return EpisodeSettings(
        confidence_threshold=threshold,
        target_accuracy=target,
        group_by=str(e.group_by) if e.group_by else None,
        n_resamples=n_resamples,
        ci_level=level,
        seed=int(e.bootstrap.seed),
    )


def _episodes_path(cfg: DictConfig) -> Path:
    value = OmegaConf.select(cfg, "data.episodes")
    if not value:
        raise InputError(
            "config: data.episodes is required for task=episode: pass data.episodes=PATH (a "
            ".parquet, .csv or .jsonl file with video_id, metadata_episode, "
            "predicted_episode, confidence, true_episode)."
        )
    return Path(str(value))


def episode_run_name(cfg: DictConfig) -> str:
    """``run_name``, else ``<model.name>-v<model.version>`` or ``<model.name>``, else the stem."""
    return run_name_for(cfg, cfg.data.episodes)


def _counts(result: EpisodeResult) -> dict[str, float]:
    decisions = result.decisions
    (_, fp), (fn, tp) = result.confusion.tolist()
    return {
        "n_auto_accept": float(np.count_nonzero(decisions == AUTO_ACCEPT)),
        "n_auto_flag": float(np.count_nonzero(decisions == AUTO_FLAG)),
        "n_human_review": float(np.count_nonzero(decisions == HUMAN_REVIEW)),
        "n_flagged": float(tp + fp),
        "n_true_mismatches": float(tp + fn),
    }


def build_summary(
    result: EpisodeResult,
    metrics: dict[str, float],
    table: EpisodeTable,
    settings: EpisodeSettings,
    digest: str,
    cfg: DictConfig,
) -> dict[str, Any]:
    """summary.json: every metric by name, plus what was evaluated and how."""
    (at_target,) = result.coverage_at_accuracy
    return {
        "task": "episode",
        "metrics": {k: (int(v) if k in COUNT_METRICS else v) for k, v in metrics.items()},
        "confusion_matrix": confusion_dict(result.confusion),
        "coverage_at_accuracy": {
            "target": at_target.target,
            "coverage": at_target.coverage,
            "threshold": at_target.threshold,
            "auto_accuracy": at_target.auto_accuracy,
            "n_auto": at_target.n_auto,
            "ci_low": at_target.ci_low,
            "ci_high": at_target.ci_high,
            "ci_level": at_target.ci_level,
            "n_resamples": at_target.n_resamples,
        },
        "dataset_digest": digest,
        "episodes": str(table.path),
        "group_by": table.group_column,
        "model": {"name": cfg.model.name, "version": cfg.model.version},
        "settings": {
            "confidence_threshold": settings.confidence_threshold,
            "target_accuracy": settings.target_accuracy,
            "group_by": settings.group_by,
            "bootstrap": {
                "n_resamples": settings.n_resamples,
                "confidence": settings.ci_level,
                "seed": settings.seed,
            },
        },
        "evaluator_version": __version__,
    }


def _params(cfg: DictConfig, table: EpisodeTable) -> dict[str, str]:
    flat = flat_params("episode", OmegaConf.to_container(cfg.episode, resolve=True))
    flat["data.episodes"] = str(cfg.data.episodes)
    flat["data.episodes_resolved"] = (
        str(table.path.resolve()) if table.path.exists() else str(cfg.data.episodes)
    )
    flat["episode.group_column"] = table.group_column or "null"
    return flat


def _dataset(table: EpisodeTable, digest: str, cfg: DictConfig) -> Any:
    """The evaluation set as an MLflow dataset: source, digest, schema; no rows copied."""
    columns = [("video_id", "string"), ("metadata_episode", "long"), ("true_episode", "long")]
    spark = str(cfg.data.episodes) if engine_name(cfg) == "spark" else None
    name = f"{table.path.stem} ({table.n_videos} videos)"
    return FileDataset.describe(table.path, name, digest, columns, spark_location=spark)


def _plot_title(cfg: DictConfig, table: EpisodeTable) -> str:
    model = episode_run_name(cfg)
    return f"Episode verification: {model} on {table.path.name} ({table.n_videos} videos)"


def run_episode(
    cfg: DictConfig, output_dir: Path, *, track: bool = True, parent_run_id: str | None = None
) -> EpisodeOutcome:
    """Evaluate one episode table (``task=episode``) and record it: the episode counterpart of
    `evaluator.tasks.poster.run_poster`, with the same arguments, outcome and errors.

    ``output_dir`` receives summary.json, episode_videos.parquet, the threshold sweep and the
    plots; ``track=False`` writes them only; ``parent_run_id`` makes the run a multirun child.
    An InputError means nothing was written and no run created; a TrackingError means the
    local outputs exist and the run is FAILED.
    """
    settings = episode_settings(cfg)
    path = _episodes_path(cfg)
    slices = load_slices(cfg)  # bad slice metadata is refused before the episodes are read
    table = _read_episodes(cfg, path, settings)
    result = evaluate_episodes(
        table.metadata_episode,
        table.predicted_episode,
        table.true_episode,
        table.confidence,
        threshold=settings.confidence_threshold,
        target_accuracies=(settings.target_accuracy,),
        groups=table.groups,
        n_resamples=settings.n_resamples,
        ci_level=settings.ci_level,
        seed=settings.seed,
        between_blocks=checkpoint,  # Ctrl-C / SIGTERM stop between resample blocks
    )
    text = evaluate_table_text(
        table,
        threshold=settings.confidence_threshold,
        n_resamples=settings.n_resamples,
        ci_level=settings.ci_level,
        seed=settings.seed,
    )
    metrics = {**result.metrics, **_counts(result), **(text.metrics if text else {})}
    digest = episode_set_digest(
        table.video_id, table.metadata_episode, table.true_episode, table.texts.text_true
    )
    tables = _tables(cfg, table, result, text, settings, slices)
    summary = build_summary(result, metrics, table, settings, digest, cfg)
    if tables.slices is not None:
        summary["slices"] = tables.slices.summary
    files = result_files(
        cfg,
        table,
        result,
        text,
        metrics,
        summary,
        tables,
        threshold=settings.confidence_threshold,
        title=_plot_title(cfg, table),
    )
    written = write_all(output_dir, files)

    run = None
    if track:
        record = _run_record(cfg, table, result, metrics, digest, tables, written, output_dir)
        run = record_evaluation(
            cfg,
            episode_run_name(cfg),
            record,
            parent_run_id,
            output_dir=output_dir,
            table_files=table_files_of(record),
        )
    return EpisodeOutcome(
        result,
        summary,
        tables.videos,
        tables.sweep,
        tables.groups,
        settings,
        output_dir,
        written,
        run,
    )


def _read_episodes(cfg: DictConfig, path: Path, settings: EpisodeSettings) -> EpisodeTable:
    """The validated episode table, read by the configured engine."""
    if engine_name(cfg) == "spark":
        from evaluator.engines.spark import spark_episode_table

        return spark_episode_table(cfg.engine, str(cfg.data.episodes), group_by=settings.group_by)
    return load_episode_table(path, group_by=settings.group_by)


def _tables(
    cfg: DictConfig,
    table: EpisodeTable,
    result: EpisodeResult,
    text: EpisodeTextResult | None,
    settings: EpisodeSettings,
    slices: Any,
) -> EpisodeTables:
    """The evaluation's tables; the per-slice metrics when ``data.slices`` is set."""
    groups = None
    if result.groups is not None and table.group_column is not None:
        groups = group_frame(result.groups, table.group_column)
        groups = group_text_columns(groups, table, text, settings.confidence_threshold)
    slice_out = None if slices is None else _slices(slices, table, result, settings, cfg, text)
    return EpisodeTables(
        videos=with_text_columns(episode_video_table(result, table), table, text),
        sweep=sweep_frame(result.curve),
        groups=groups,
        misreads=misreads_frame(table, result, text, slice_out.videos if slice_out else None),
        slices=slice_out,
    )


def _run_record(
    cfg: DictConfig,
    table: EpisodeTable,
    result: EpisodeResult,
    metrics: dict[str, float],
    digest: str,
    tables: EpisodeTables,
    written: list[Path],
    output_dir: Path,
) -> RunRecord:
    """What the MLflow run records: params, tags, finite metrics, files, tables, dataset."""
    slice_out = tables.slices
    all_metrics = {**metrics, **(slice_out.metrics if slice_out else {})}
    return RunRecord(
        params={**_params(cfg, table), **(slice_out.params if slice_out else {})},
        tags=evaluation_tags("episode", digest, table.path.name, cfg.model),
        metrics={k: v for k, v in all_metrics.items() if math.isfinite(v)},
        stepped=stepped_metrics(result),
        artifacts=artifact_list(written, output_dir),
        tables=tables.logged() if cfg.mlflow.log_table else {},
        dataset=_dataset(table, digest, cfg) if cfg.mlflow.log_dataset else None,
    )


def stepped_metrics(result: EpisodeResult) -> dict[str, list[tuple[int, float]]]:
    """The automation on the grid 0.00, 0.01, ..., 1.00 as stepped metrics.

    Step s holds the value at threshold s / 100 (what a full evaluation with
    ``episode.confidence_threshold=s/100`` reports). Thresholds above every confidence
    automate nothing: their coverage is 0 and their accuracy is left out (undefined).
    """
    grid = curve_at_thresholds(result.curve, STEPPED_THRESHOLDS)
    steps = np.round(100 * STEPPED_THRESHOLDS).astype(int)
    out: dict[str, list[tuple[int, float]]] = {}
    for name, attr in STEPPED_METRICS.items():
        values = getattr(grid, attr)
        out[name] = [
            (int(s), float(v)) for s, v in zip(steps, values, strict=True) if math.isfinite(v)
        ]
    return out


def _slices(
    slices: Any,
    table: EpisodeTable,
    result: EpisodeResult,
    settings: EpisodeSettings,
    cfg: DictConfig,
    text: EpisodeTextResult | None = None,
) -> SliceOutputs:
    """The per-slice episode metrics (``data.slices``), with the text columns when given."""
    videos = episode_videos(
        table.metadata_episode, table.predicted_episode, table.true_episode, table.confidence
    )
    accuracy = result.metrics["episode_accuracy"]
    return episode_slices(
        slices,
        table.video_id,
        videos,
        threshold=settings.confidence_threshold,
        target=settings.target_accuracy,
        target_name=settings.target_name,
        bootstrap=cfg.episode.bootstrap,
        overall=(accuracy, math.nan, math.nan),
        label=episode_run_name(cfg),
        plots=bool(cfg.plots),
        text=text,
    )
