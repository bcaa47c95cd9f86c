"""One poster evaluation, end to end: config -> engine -> numbers -> files -> MLflow.

`run_poster` runs its steps one after the other, as `evaluator.tasks.episode.run_episode`
does: read and score, write the data files, draw the plots and the report, record the run.
The run is created only once every file exists, and always ends (FINISHED or FAILED), also on
Ctrl-C and SIGTERM (`evaluator.lifecycle`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from evaluator.core.poster import PosterResult, PosterSettings
from evaluator.engines import engine_name
from evaluator.engines.local import Scored, score_poster, stream_sources
from evaluator.errors import InputError
from evaluator.io.outputs import Writer, write_all, write_json, write_parquet, write_text
from evaluator.io.poster import PosterInputs, load_poster_inputs
from evaluator.io.sources import Source, resolve_source
from evaluator.report.tables import match_table, sweep_table
from evaluator.tasks.poster_files import (
    Visuals,
    build_summary,
    dataset_of,
    params_of,
    recall_intervals,
    sweep_curves,
    visuals_of,
)
from evaluator.tasks.poster_similarity import similarity_options, similarity_outputs
from evaluator.tasks.slicing import LoadedSlices, SliceOutputs, load_slices, poster_slices

if TYPE_CHECKING:
    from evaluator.tracking.mlflow_run import RecordedRun, RunRecord


@dataclass(frozen=True)
class PosterOutcome:
    """What one evaluation produced.

    Attributes:
        result: the numbers (core result).
        summary: the content of summary.json.
        match_table: the per-video match table.
        output_dir: where the result files were written.
        files: the result files written.
        run: the MLflow run, or None when tracking was off.
        scored: the engine's answer (video ids, inputs read, units).
    """

    result: PosterResult
    summary: dict[str, Any]
    match_table: pd.DataFrame
    output_dir: Path
    files: list[Path]
    run: RecordedRun | None
    scored: Scored | None = None


def _grid(values: Any, configured: float | None) -> tuple[float, ...]:
    grid = {float(v) for v in values}
    if configured is not None:
        grid.add(float(configured))
    return tuple(sorted(grid))


def settings_from_config(cfg: DictConfig) -> PosterSettings:
    """Turn the composed config into plain, checked settings.

    Raises:
        InputError: a value outside its allowed range, naming the config key.
    """
    similarity_options(cfg)  # matching.center is refused here too, before any work
    sweep = cfg.sweep
    try:
        return PosterSettings(
            time_tolerance_s=float(cfg.matching.time_tolerance_s),
            min_cosine=None if cfg.matching.min_cosine is None else float(cfg.matching.min_cosine),
            min_expert_frames=int(cfg.metrics.min_expert_frames),
            k_max=int(cfg.metrics.k_max),
            # The configured point is always on the grid, so the sweep curves pass through it.
            sweep_time_tolerances_s=_grid(sweep.time_tolerances_s, cfg.matching.time_tolerance_s)
            if sweep.enabled
            else (),
            sweep_min_cosines=_grid(sweep.min_cosines, cfg.matching.min_cosine),
        )
    except ValueError as exc:
        raise InputError(f"config: {exc}") from None


def default_run_name(cfg: DictConfig) -> str:
    """``<model.name>-v<model.version>``, ``<model.name>``, else the predictions file's stem."""
    from evaluator.tracking.mlflow_run import run_name_for

    return run_name_for(cfg, cfg.data.predictions)


def build_table_embedder(cfg: DictConfig, settings: PosterSettings | None = None) -> Any:
    """The image embedder of ``cfg.embedder`` (torchvision / timm backbone + embedding cache).

    ``settings``: the run's settings when already built (else built from ``cfg``).

    Raises:
        InputError: an unknown embedder, model or weights name, or weights that cannot be
            found (the message says how to supply a local file).
    """
    e = cfg.embedder
    if e.name not in ("torchvision", "timm"):
        raise InputError(
            f"config: embedder={e.name} is not known; use embedder=precomputed (the 'embedding' "
            f"column), embedder=torchvision, embedder=mobilenet_v2_deepsort or embedder=timm."
        )
    # torch is imported only when frames have to be embedded.
    from evaluator.embed import (
        EmbedderSpec,
        EmbeddingCache,
        WeightsUnavailableError,
        build_embedder,
    )
    from evaluator.io.images import TableEmbedder

    try:
        # The embedder config group mirrors EmbedderSpec field for field (typed by its schema).
        spec = EmbedderSpec(**{f.name: e[f.name] for f in fields(EmbedderSpec)})
        if e.name == "timm":
            from evaluator.embed.timm_backbone import build_timm_embedder

            embedder = build_timm_embedder(
                spec,
                model_name=e.get("model_name"),
                pretrained=bool(e.get("pretrained", True)),
                checkpoint=e.get("checkpoint"),
            )
        else:
            embedder = build_embedder(spec)
    except (ValueError, WeightsUnavailableError) as exc:
        raise InputError(f"config: embedder: {exc}") from None
    root = cfg.data.image_root
    if settings is None:
        settings = settings_from_config(cfg)
    return TableEmbedder(
        embedder,
        EmbeddingCache.from_spec(spec),
        None if root is None else Path(str(root)),
        window_s=settings.candidate_window_s,
        k_max=settings.k_max,
        min_expert_frames=settings.min_expert_frames,
        # Centring on the mean expert vector needs every eligible expert frame's vector.
        keep_all_experts=cfg.matching.center == "experts",
    )


def _required_path(cfg: DictConfig, key: str) -> Path:
    value = OmegaConf.select(cfg, key)
    if not value:
        raise InputError(
            f"config: {key} is required: pass {key}=PATH (a .parquet, .csv or .jsonl file)."
        )
    return Path(str(value))


@dataclass(frozen=True)
class PosterEvaluation:
    """The numbers and result files of one evaluation, before anything is written or recorded.

    Both `video-eval` (`run_poster`) and the ``mlflow.models.evaluate`` plugin
    (`evaluator.integrations.mlflow_plugin`) produce it with `evaluate_scored` (or
    `evaluate_inputs`) and record it with `poster_record`, so the two report the same metrics,
    tables and plots.

    Attributes:
        scored: the engine's answer.
        result: the core result.
        metrics: every step-0 metric by name (NaN included; the record drops non-finite ones).
        stepped: the stepped metrics (``recall_at_k``, its interval, the sweep curves).
        summary: the content of summary.json.
        match_table: the per-video match table.
        digest: the dataset digest of the eligible expert set.
        data_files: relative path -> writer of the data files (summary, tables, config).
        visuals: the plots and report to draw.
        slices: the per-slice results (``data.slices``), or None.
    """

    scored: Scored
    result: PosterResult
    metrics: dict[str, float]
    stepped: dict[str, list[tuple[int, float]]]
    summary: dict[str, Any]
    match_table: pd.DataFrame
    digest: str
    data_files: dict[str, Writer]
    visuals: Visuals
    slices: SliceOutputs | None = None

    @property
    def files(self) -> dict[str, Writer]:
        """Every result file (data files, then plots and report), in writing order."""
        return {**self.data_files, **self.visuals.writers()}


def _gallery_cap(cfg: DictConfig) -> int | None:
    value = OmegaConf.select(cfg, "report.max_gallery_videos", default=None)
    return None if value is None else int(value)


def _judge_frames(cfg: DictConfig) -> bool:
    return bool(OmegaConf.select(cfg, "report.html", default=False))


def evaluate_inputs(
    inputs: PosterInputs,
    cfg: DictConfig,
    *,
    label: str,
    table_embedder: Any = None,
    settings: PosterSettings | None = None,
) -> PosterEvaluation:
    """Tables loaded whole -> every number, table, plot and report of one evaluation.

    ``settings``: the run's settings when already built (else built from ``cfg``).

    Raises:
        InputError: a bad setting, bad slice metadata, or no eligible video.
    """
    slices = load_slices(cfg)  # bad slice metadata is refused before anything is computed
    scored = score_poster(
        inputs,
        settings_from_config(cfg) if settings is None else settings,
        judge_frames=_judge_frames(cfg),
        max_gallery_videos=_gallery_cap(cfg),
        center=similarity_options(cfg).center,
    )
    return evaluate_scored(scored, cfg, label=label, table_embedder=table_embedder, slices=slices)


def evaluate_scored(
    scored: Scored,
    cfg: DictConfig,
    *,
    label: str,
    table_embedder: Any = None,
    slices: LoadedSlices | None = None,
) -> PosterEvaluation:
    """An engine's answer -> every number, table, plot and report of one evaluation.

    Args:
        scored: what the engine computed.
        cfg: a config with the ``video-eval`` schema (matching, metrics, sweep, plots, report,
            data.image_root, model).
        label: the model's name in plot titles and the report (the run name).
        table_embedder: the image embedder that computed the vectors, or None.
        slices: the slice metadata already read; None reads ``data.slices`` (if given).

    Returns:
        The evaluation; nothing is written yet.

    Raises:
        InputError: a bad bootstrap setting or bad slice metadata.
    """
    if slices is None:
        slices = load_slices(cfg)
    result = scored.finished.result
    similarity = similarity_outputs(scored, cfg)
    digest = similarity.digest
    table = match_table(result, scored.finished.video_ids)
    intervals = recall_intervals(result, cfg)
    metrics = dict(result.metrics)
    metrics.update(similarity.metrics)
    if table_embedder is not None:
        metrics.update(table_embedder.metrics())
    stepped = {"recall_at_k": [(k + 1, float(v)) for k, v in enumerate(result.recall_curve)]}
    if intervals is not None:
        for k in result.settings.report_ks:
            metrics[f"recall_at_{k}_ci_low"] = float(intervals.low[k - 1])
            metrics[f"recall_at_{k}_ci_high"] = float(intervals.high[k - 1])
        stepped["recall_at_k_ci_low"] = [(k + 1, float(v)) for k, v in enumerate(intervals.low)]
        stepped["recall_at_k_ci_high"] = [(k + 1, float(v)) for k, v in enumerate(intervals.high)]
    stepped.update(sweep_curves(result))
    summary = build_summary(scored, digest, cfg, metrics)
    summary["settings"]["center"] = similarity.center
    summary.update(similarity.summary)
    files: dict[str, Writer] = {
        "summary.json": write_json(summary),
        "match_table.parquet": write_parquet(table),
        "config.yaml": write_text(OmegaConf.to_yaml(cfg, resolve=True)),
    }
    if result.sweep is not None:
        files["sweep.parquet"] = write_parquet(sweep_table(result.sweep))
    slice_out = None
    if slices is not None:
        top = f"recall_at_{result.settings.k_max}"
        nan = float("nan")
        slice_out = poster_slices(
            slices,
            table,
            k_max=result.settings.k_max,
            bootstrap=cfg.metrics.bootstrap,
            overall=(
                metrics[top],
                metrics.get(f"{top}_ci_low", nan),
                metrics.get(f"{top}_ci_high", nan),
            ),
            label=label,
            plots=bool(cfg.plots),
        )
        summary["slices"] = slice_out.summary
        files.update(slice_out.data_files)
    visuals = replace(
        visuals_of(scored, cfg, label, summary, intervals, slice_out),
        calibration=similarity.calibration,
    )
    return PosterEvaluation(
        scored, result, metrics, stepped, summary, table, digest, files, visuals, slice_out
    )


def poster_record(
    evaluation: PosterEvaluation,
    cfg: DictConfig,
    written: list[Path],
    output_dir: Path,
    *,
    table_embedder: Any = None,
) -> RunRecord:
    """What MLflow records of an evaluation whose files are in ``output_dir``.

    See docs/mlflow.md#one-poster-evaluation.
    """
    from evaluator.tracking.mlflow_run import RunRecord, artifact_list, evaluation_tags

    scored = evaluation.scored
    tags = evaluation_tags("poster", evaluation.digest, scored.experts.path.name, cfg.model)
    log_dataset = cfg.mlflow.log_dataset and not scored.experts.in_memory
    n_frames = int(evaluation.metrics["n_expert_frames_eligible"])
    sl = evaluation.slices
    tables = {"match_table.json": evaluation.match_table}
    if sl is not None:
        tables["slices.json"] = sl.table
    return RunRecord(
        params={
            **params_of(cfg, scored),
            **(table_embedder.embedder.params if table_embedder else {}),
            **(sl.params if sl is not None else {}),
        },
        tags=tags,
        metrics={
            k: v
            for k, v in {**evaluation.metrics, **(sl.metrics if sl else {})}.items()
            if np.isfinite(v)
        },
        stepped=evaluation.stepped,
        artifacts=artifact_list(written, output_dir),
        tables=tables if cfg.mlflow.log_table else {},
        dataset=dataset_of(scored, evaluation.digest, n_frames) if log_dataset else None,
    )


def _streamable(experts: Source, predictions: Source, cfg: DictConfig) -> bool:
    precomputed = cfg.matching.min_cosine is None or cfg.embedder.name == "precomputed"
    return precomputed and experts.suffix == predictions.suffix == ".parquet"


def score_from_config(
    cfg: DictConfig, table_embedder: Any = None, settings: PosterSettings | None = None
) -> Scored:
    """Run the configured engine on ``data.experts`` / ``data.predictions``.

    ``engine=spark`` reads and scores on Spark (`evaluator.tasks.poster_spark`). With
    ``engine=local``, parquet inputs (files, part directories, globs) with precomputed vectors
    stream within ``engine.memory_budget_mb``; CSV / JSONL files and vectors computed by an
    image embedder are loaded whole.

    Raises:
        InputError: bad config or input files.
    """
    if settings is None:
        settings = settings_from_config(cfg)
    experts_given = str(_required_path(cfg, "data.experts"))
    predictions_given = str(_required_path(cfg, "data.predictions"))
    if engine_name(cfg) == "spark":
        # Spark reads what it is given (URIs, tables, part folders): no local resolving.
        from evaluator.tasks.poster_spark import spark_scored

        return spark_scored(cfg, settings, table_embedder)
    experts = resolve_source(experts_given, "experts")
    predictions = resolve_source(predictions_given, "predictions")
    if _streamable(experts, predictions, cfg):
        return stream_sources(
            experts,
            predictions,
            settings,
            budget_mb=float(OmegaConf.select(cfg, "engine.memory_budget_mb", default=1024)),
            temp_dir=OmegaConf.select(cfg, "engine.temp_dir", default=None),
            judge_frames=_judge_frames(cfg),
            want_images=_judge_frames(cfg) and int(cfg.report.thumbnail_px) > 0,
            max_gallery_videos=_gallery_cap(cfg),
            center=similarity_options(cfg).center,
        )
    inputs = load_poster_inputs(
        experts.label if experts.is_single_file else experts,
        predictions.label if predictions.is_single_file else predictions,
        need_embeddings=settings.min_cosine is not None,
        image_embedder=table_embedder,
    )
    return score_poster(
        inputs,
        settings,
        judge_frames=_judge_frames(cfg),
        max_gallery_videos=_gallery_cap(cfg),
        center=similarity_options(cfg).center,
    )


def run_poster(
    cfg: DictConfig, output_dir: Path, *, track: bool = True, parent_run_id: str | None = None
) -> PosterOutcome:
    """Evaluate one predictions table against the expert set and record it.

    Args:
        cfg: the composed ``video-eval`` config.
        output_dir: where summary.json, match_table.parquet, ... are written.
        track: record an MLflow run (False: local outputs only).
        parent_run_id: record the run as a child of this run (multirun).

    Returns:
        The outcome; ``outcome.run`` names the MLflow run.

    Raises:
        InputError: bad config or input files (nothing written, no run created).
        TrackingError: MLflow failed; the local outputs exist and the run is FAILED.
    """
    settings = settings_from_config(cfg)  # built once, for every step below
    slices = load_slices(cfg)  # refused before anything is computed
    table_embedder = None
    if cfg.matching.min_cosine is not None and cfg.embedder.name != "precomputed":
        table_embedder = build_table_embedder(cfg, settings)
    scored = score_from_config(cfg, table_embedder, settings)
    label = default_run_name(cfg)
    evaluation = evaluate_scored(
        scored, cfg, label=label, table_embedder=table_embedder, slices=slices
    )
    written = write_all(output_dir, evaluation.files)
    run = None
    if track:
        from evaluator.tracking.mlflow_run import record_evaluation
        from evaluator.tracking.records import table_files_of

        record = poster_record(evaluation, cfg, written, output_dir, table_embedder=table_embedder)
        run = record_evaluation(
            cfg,
            label,
            record,
            parent_run_id,
            output_dir=output_dir,
            table_files=table_files_of(record),
        )
    return PosterOutcome(
        evaluation.result,
        evaluation.summary,
        evaluation.match_table,
        output_dir,
        written,
        run,
        scored,
    )
