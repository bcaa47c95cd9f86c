"""One poster evaluation, end to end: config -> io -> core -> report -> outputs -> MLflow."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from evaluator import __version__
from evaluator.core.bootstrap import BootstrapResult, bootstrap_mean_ci
from evaluator.core.digest import dataset_digest
from evaluator.core.poster import PosterResult, PosterSettings
from evaluator.engines.local import score_poster
from evaluator.errors import InputError
from evaluator.io.outputs import Writer, write_all, write_json, write_parquet, write_text
from evaluator.io.poster import PosterInputs, load_poster_inputs
from evaluator.report.html import ReportInputs, ReportOptions, report_writer
from evaluator.report.tables import match_table, sweep_table
from evaluator.tracking.datasets import FileDataset
from evaluator.tracking.mlflow_run import (
    RecordedRun,
    RunRecord,
    artifact_list,
    evaluation_tags,
    record_evaluation,
    run_name_for,
    warm_store,
)

COUNT_METRICS = (
    "n_embeddings_computed",
    "n_embeddings_cached",
    "n_videos_eligible",
    "n_videos_excluded",
    "n_videos_without_predictions",
    "n_prediction_videos_unknown",
    "n_predictions_truncated",
    "n_expert_duplicates_dropped",
    "n_expert_frames_eligible",
    "n_model_frames_considered",
)


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
    """

    result: PosterResult
    summary: dict[str, Any]
    match_table: pd.DataFrame
    output_dir: Path
    files: list[Path]
    run: RecordedRun | None


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


def recall_intervals(result: PosterResult, cfg: DictConfig) -> BootstrapResult | None:
    """Percentile bootstrap intervals of recall@k for every k (videos resampled; None = off)."""
    boot = cfg.metrics.bootstrap
    if int(boot.n_resamples) <= 0 or result.matches.videos.shape[0] == 0:
        return None
    try:
        return bootstrap_mean_ci(
            result.hits.astype(np.float64),
            n_resamples=int(boot.n_resamples),
            confidence=float(boot.confidence),
            seed=int(boot.seed),
        )
    except ValueError as exc:
        raise InputError(f"config: metrics.bootstrap: {exc}") from None


def sweep_curves(result: PosterResult) -> dict[str, list[tuple[int, float]]]:
    """The two stepped sweep metrics of SPEC section 6 (UI-overlayable sweep curves).

    ``sweep_recall_at_{K}_by_min_cosine``: step = round(100 * theta), tau at the configured value;
    ``sweep_recall_at_{K}_by_tolerance``: step = round(10 * tau), theta at the configured value.
    """
    sweep, s = result.sweep, result.settings
    if sweep is None:
        return {}
    k = s.k_max
    i = int(np.flatnonzero(sweep.time_tolerances_s == s.time_tolerance_s)[0])
    curves = {}
    if s.min_cosine is None:
        j = 0
    else:
        j = int(np.flatnonzero(sweep.min_cosines == s.min_cosine)[0])
        curves[f"sweep_recall_at_{k}_by_min_cosine"] = [
            (round(100 * float(theta)), float(sweep.recall[i, jj, k - 1]))
            for jj, theta in enumerate(sweep.min_cosines)
        ]
    curves[f"sweep_recall_at_{k}_by_tolerance"] = [
        (round(10 * float(tau)), float(sweep.recall[ii, j, k - 1]))
        for ii, tau in enumerate(sweep.time_tolerances_s)
    ]
    return curves


def plot_writers(
    result: PosterResult, intervals: BootstrapResult | None, label: str, cfg: DictConfig
) -> dict[str, Writer]:
    """plots/recall_at_k.png, plots/sweep_recall_at_{K}.png and plots/pairs.png."""
    # matplotlib is imported only when plots are asked for.
    from evaluator.report.plots import Curve, plot_pairs, plot_recall_curves, plot_sweep_heatmap

    s = result.settings
    nan = np.full(s.k_max, np.nan)
    curve = Curve(
        label,
        result.recall_curve,
        nan if intervals is None else intervals.low,
        nan if intervals is None else intervals.high,
    )
    confidence = None if intervals is None else float(cfg.metrics.bootstrap.confidence)
    n = int(result.metrics["n_videos_eligible"])
    title = f"{label} ({n} eligible videos)"
    writers: dict[str, Writer] = {
        "plots/recall_at_k.png": lambda p: plot_recall_curves(
            [curve], p, title=f"recall@k: {title}", confidence=confidence
        ),
        "plots/pairs.png": lambda p: plot_pairs(
            result.matches,
            p,
            time_tolerance_s=s.time_tolerance_s,
            min_cosine=s.min_cosine,
            title=title,
        ),
    }
    if result.sweep is not None:
        sweep = result.sweep
        writers[f"plots/sweep_recall_at_{s.k_max}.png"] = lambda p: plot_sweep_heatmap(
            sweep,
            s.k_max,
            p,
            time_tolerance_s=s.time_tolerance_s,
            min_cosine=s.min_cosine,
            title=label,
        )
    return writers


def default_run_name(cfg: DictConfig) -> str:
    """``<model.name>-v<model.version>``, ``<model.name>``, else the predictions file's stem."""
    return run_name_for(cfg, cfg.data.predictions)


def build_table_embedder(cfg: DictConfig) -> Any:
    """The image embedder of ``cfg.embedder`` (torchvision backbone + embedding cache).

    Raises:
        InputError: an unknown embedder, model or weights name, or weights that cannot be
            found (the message says how to supply a local file).
    """
    e = cfg.embedder
    if e.name != "torchvision":
        raise InputError(
            f"config: embedder={e.name} is not known; use embedder=precomputed (the 'embedding' "
            f"column), embedder=torchvision or embedder=mobilenet_v2_deepsort."
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
        embedder = build_embedder(spec)
    except (ValueError, WeightsUnavailableError) as exc:
        raise InputError(f"config: embedder: {exc}") from None
    root = cfg.data.image_root
    return TableEmbedder(
        embedder, EmbeddingCache.from_spec(spec), None if root is None else Path(str(root))
    )


def _required_path(cfg: DictConfig, key: str) -> Path:
    value = OmegaConf.select(cfg, key)
    if not value:
        raise InputError(
            f"config: {key} is required: pass {key}=PATH (a .parquet, .csv or .jsonl file)."
        )
    return Path(str(value))


def build_summary(
    result: PosterResult,
    inputs: PosterInputs,
    digest: str,
    cfg: DictConfig,
    metrics: dict[str, float],
) -> dict[str, Any]:
    """summary.json: every metric by name, plus what was evaluated and how."""
    metrics = {k: (int(v) if k in COUNT_METRICS else v) for k, v in metrics.items()}
    return {
        "task": "poster",
        "metrics": metrics,
        "recall_at_k": [float(v) for v in result.recall_curve],
        "dataset_digest": digest,
        "experts": str(inputs.expert_table.path),
        "predictions": str(inputs.prediction_table.path),
        "rank_source": inputs.prediction_table.rank_source,
        "model": {"name": cfg.model.name, "version": cfg.model.version},
        "settings": {
            "time_tolerance_s": result.settings.time_tolerance_s,
            "min_cosine": result.settings.min_cosine,
            "min_expert_frames": result.settings.min_expert_frames,
            "k_max": result.settings.k_max,
        },
        "evaluator_version": __version__,
    }


def _params(cfg: DictConfig, inputs: PosterInputs) -> dict[str, str]:
    flat: dict[str, str] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            flat[prefix] = "null" if node is None else str(node)

    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    for group in ("matching", "metrics", "sweep", "embedder", "data"):
        walk(group, container.get(group, {}))
    for key, loaded in (("experts", inputs.expert_table), ("predictions", inputs.prediction_table)):
        flat[f"data.{key}_resolved"] = (
            str(loaded.path) if loaded.in_memory else str(loaded.path.resolve())
        )
    flat["predictions.rank_source"] = inputs.prediction_table.rank_source
    emb = inputs.experts.embedding
    flat["embedding.dim"] = "null" if emb is None else str(emb.shape[1])
    return flat


def _dataset(inputs: PosterInputs, digest: str, keep_rows: np.ndarray) -> Any:
    """The eligible expert set as an MLflow dataset: source, digest, schema; no rows copied."""
    columns = [("video_id", "string"), ("timestamp", "double")]
    if inputs.experts.embedding is not None:
        columns.append((f"embedding[{inputs.experts.embedding.shape[1]}]", "string"))
    columns.extend(
        (str(c), "string")
        for c in inputs.expert_table.frame.columns
        if c not in ("video_id", "timestamp")
    )
    path = inputs.expert_table.path
    return FileDataset.describe(
        path, f"{path.stem} ({int(keep_rows.sum())} eligible expert frames)", digest, columns
    )


@dataclass(frozen=True)
class PosterEvaluation:
    """The numbers and result files of one evaluation, before anything is written or recorded.

    Both `video-eval` (`run_poster`) and the ``mlflow.models.evaluate`` plugin
    (`evaluator.integrations.mlflow_plugin`) produce it with `evaluate_inputs` and record it with
    `poster_record`, so the two report the same metrics, tables and plots.

    Attributes:
        inputs: the validated tables.
        result: the core result.
        metrics: every step-0 metric by name (NaN included; the record drops non-finite ones).
        stepped: the stepped metrics (``recall_at_k``, its interval, the sweep curves).
        summary: the content of summary.json.
        match_table: the per-video match table.
        digest: the dataset digest of the eligible expert set.
        keep_rows: bool per expert row: in the eligible expert set.
        files: relative path -> writer of every result file, in writing order.
    """

    inputs: PosterInputs
    result: PosterResult
    metrics: dict[str, float]
    stepped: dict[str, list[tuple[int, float]]]
    summary: dict[str, Any]
    match_table: pd.DataFrame
    digest: str
    keep_rows: np.ndarray
    files: dict[str, Writer]


def evaluate_inputs(
    inputs: PosterInputs,
    cfg: DictConfig,
    *,
    label: str,
    table_embedder: Any = None,
) -> PosterEvaluation:
    """Validated tables -> every number, table, plot and report of one evaluation.

    Args:
        inputs: the validated expert and prediction tables.
        cfg: a config with the ``video-eval`` schema (matching, metrics, sweep, plots, report,
            data.image_root, model).
        label: the model's name in plot titles and the report (the run name).
        table_embedder: the image embedder that computed the vectors, or None.

    Returns:
        The evaluation; nothing is written yet.

    Raises:
        InputError: a bad setting, or no eligible video.
    """
    settings = settings_from_config(cfg)
    result = score_poster(
        inputs, settings, judge_frames=bool(OmegaConf.select(cfg, "report.html", default=False))
    )

    # The digest covers the eligible expert set, after exact duplicates are dropped.
    exp = inputs.experts
    keep_rows = result.expert_keep & result.eligible[exp.video]
    digest = dataset_digest(
        inputs.video_ids[exp.video[keep_rows]],
        exp.timestamp[keep_rows],
        None if exp.embedding is None else exp.embedding[keep_rows],
    )
    table = match_table(result, inputs.video_ids)
    intervals = recall_intervals(result, cfg)
    metrics = dict(result.metrics)
    if table_embedder is not None:
        metrics["n_embeddings_computed"] = float(table_embedder.n_computed)
        metrics["n_embeddings_cached"] = float(table_embedder.n_cached)
    stepped = {"recall_at_k": [(k + 1, float(v)) for k, v in enumerate(result.recall_curve)]}
    if intervals is not None:
        for k in result.settings.report_ks:
            metrics[f"recall_at_{k}_ci_low"] = float(intervals.low[k - 1])
            metrics[f"recall_at_{k}_ci_high"] = float(intervals.high[k - 1])
        stepped["recall_at_k_ci_low"] = [(k + 1, float(v)) for k, v in enumerate(intervals.low)]
        stepped["recall_at_k_ci_high"] = [(k + 1, float(v)) for k, v in enumerate(intervals.high)]
    stepped.update(sweep_curves(result))
    summary = build_summary(result, inputs, digest, cfg, metrics)
    files: dict[str, Writer] = {
        "summary.json": write_json(summary),
        "match_table.parquet": write_parquet(table),
        "config.yaml": write_text(OmegaConf.to_yaml(cfg, resolve=True)),
    }
    if result.sweep is not None:
        files["sweep.parquet"] = write_parquet(sweep_table(result.sweep))
    if cfg.plots:
        files.update(plot_writers(result, intervals, label, cfg))
    if cfg.report.html:
        # After the plots: the report embeds the PNGs written just before it.
        files["report.html"] = report_writer(
            ReportInputs(
                title=label,
                result=result,
                inputs=inputs,
                summary=summary,
                table=table,
                intervals=intervals,
                image_root=None if cfg.data.image_root is None else Path(str(cfg.data.image_root)),
            ),
            ReportOptions(
                page_size=int(cfg.report.page_size),
                thumbnail_px=int(cfg.report.thumbnail_px),
                max_thumbnail_videos=int(cfg.report.max_thumbnail_videos),
            ),
            plots=[rel for rel in files if rel.startswith("plots/")],
        )
    return PosterEvaluation(
        inputs, result, metrics, stepped, summary, table, digest, keep_rows, files
    )


def poster_record(
    evaluation: PosterEvaluation,
    cfg: DictConfig,
    written: list[Path],
    output_dir: Path,
    *,
    table_embedder: Any = None,
) -> RunRecord:
    """What MLflow records of an evaluation whose files are in ``output_dir`` (SPEC section 7)."""
    inputs = evaluation.inputs
    tags = evaluation_tags("poster", evaluation.digest, inputs.expert_table.path.name, cfg.model)
    log_dataset = cfg.mlflow.log_dataset and not inputs.expert_table.in_memory
    return RunRecord(
        params={
            **_params(cfg, inputs),
            **(table_embedder.embedder.params if table_embedder else {}),
        },
        tags=tags,
        metrics={k: v for k, v in evaluation.metrics.items() if np.isfinite(v)},
        stepped=evaluation.stepped,
        artifacts=artifact_list(written, output_dir),
        tables={"match_table.json": evaluation.match_table} if cfg.mlflow.log_table else {},
        dataset=_dataset(inputs, evaluation.digest, evaluation.keep_rows) if log_dataset else None,
    )


def run_poster(
    cfg: DictConfig, output_dir: Path, *, track: bool = True, parent_run_id: str | None = None
) -> PosterOutcome:
    """Evaluate one predictions file against the expert set and record it.

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
    settings = settings_from_config(cfg)
    experts_path = _required_path(cfg, "data.experts")
    predictions_path = _required_path(cfg, "data.predictions")
    store_ready = warm_store(str(cfg.mlflow.tracking_uri)) if track else (lambda: None)
    table_embedder = None
    if settings.min_cosine is not None and cfg.embedder.name != "precomputed":
        table_embedder = build_table_embedder(cfg)
    inputs = load_poster_inputs(
        experts_path,
        predictions_path,
        need_embeddings=settings.min_cosine is not None,
        image_embedder=table_embedder,
    )
    evaluation = evaluate_inputs(
        inputs, cfg, label=default_run_name(cfg), table_embedder=table_embedder
    )
    written = write_all(output_dir, evaluation.files)

    run = None
    if track:
        store_ready()
        record = poster_record(evaluation, cfg, written, output_dir, table_embedder=table_embedder)
        tables = {"match_table.json": "match_table.parquet"}
        run = record_evaluation(
            cfg,
            default_run_name(cfg),
            record,
            parent_run_id,
            output_dir=output_dir,
            table_files=tables,
        )
    return PosterOutcome(
        evaluation.result, evaluation.summary, evaluation.match_table, output_dir, written, run
    )
