"""``engine=spark`` for the poster task: Spark computes the per-video outcomes, the rest is local.

`spark_evaluation` runs `evaluator.engines.spark.spark_score_poster` (read, check, embed and
score on the executors; merge and finish on the driver) and hands the finished result to
`evaluator.tasks.poster.evaluate_inputs`, so the statistics, tables, plots, report and MLflow
record are made by the very code ``engine=local`` uses. The tables themselves never come to the
driver: the `PosterInputs` given to it describe them (names, columns, embedding length, the
gallery's image paths) without their rows.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from evaluator.core.frames import Frames
from evaluator.core.partials import FinishedPoster
from evaluator.core.poster import PosterResult, PosterSettings
from evaluator.engines.spark import SparkEmbedOptions, SparkPosterRun, spark_score_poster
from evaluator.engines.spark_inputs import SparkPosterTable
from evaluator.io.poster import LoadedTable, PosterInputs
from evaluator.tasks.poster import PosterEvaluation, build_table_embedder, evaluate_inputs


def _described_table(table: SparkPosterTable, images: np.ndarray | None) -> LoadedTable:
    """A table's description: its columns (no rows), plus the gallery frames' image paths."""
    n = 0 if images is None else len(images)
    empty = pd.Categorical.from_codes(np.full(n, -1, dtype=np.int8), categories=[])
    frame = pd.DataFrame({c: empty for c in table.columns if c != "embedding"}, index=range(n))
    if images is not None and "image" in frame.columns:
        frame["image"] = images
    return LoadedTable(
        path=Path(table.source),
        frame=frame,
        video_id=np.zeros(0, dtype=object),
        timestamp=np.zeros(0),
        embedding=None,
        rank=None,
        rank_source=table.rank_source,
        in_memory=True,
    )


def described_inputs(run: SparkPosterRun) -> tuple[PosterInputs, PosterResult]:
    """The `PosterInputs` describing what Spark read, and the result with gallery rows that
    index the described tables' image paths."""
    finished: FinishedPoster = run.finished
    result = finished.result
    frames = result.matches.frames
    if frames is not None:
        # Gallery frame i of each side is row i of the described table (its image path).
        frames = replace(
            frames,
            model_row=np.arange(frames.model_row.shape[0], dtype=np.int64),
            expert_row=np.arange(frames.expert_row.shape[0], dtype=np.int64),
        )
        result = replace(result, matches=replace(result.matches, frames=frames))
    dim = run.experts.dim
    vectors = None if dim is None else np.zeros((0, dim), dtype=np.float32)
    none = np.zeros(0, dtype=np.int64)
    inputs = PosterInputs(
        experts=Frames(none, np.zeros(0), vectors),
        model=Frames(none, np.zeros(0), vectors, none),
        video_ids=finished.video_ids,
        expert_table=_described_table(run.experts, finished.expert_image),
        prediction_table=_described_table(run.predictions, finished.model_image),
    )
    return inputs, result


def spark_evaluation(
    cfg: DictConfig, settings: PosterSettings, label: str
) -> tuple[PosterEvaluation, Any]:
    """Every number, table and file of one poster evaluation, computed with ``engine=spark``.

    Args:
        cfg: the composed ``video-eval`` config (``engine=spark``).
        settings: its checked settings.
        label: the run name (plot titles, report).

    Returns:
        (the evaluation, the image embedder or None): as `evaluate_inputs` and
        `evaluator.tasks.poster.build_table_embedder` give them for ``engine=local``.

    Raises:
        InputError: pyspark / Java missing, bad input, or a Spark job that failed in the end.
    """
    table_embedder = None
    embed = None
    if settings.min_cosine is not None and cfg.embedder.name != "precomputed":
        table_embedder = build_table_embedder(cfg)
        cache = table_embedder.cache
        embed = SparkEmbedOptions(
            table_embedder.embedder,
            None if cache is None else str(cache.root),
            None if cfg.data.image_root is None else str(cfg.data.image_root),
        )
    run = spark_score_poster(
        cfg.engine,
        str(cfg.data.experts),
        str(cfg.data.predictions),
        settings,
        judge_frames=bool(OmegaConf.select(cfg, "report.html", default=False)),
        embed=embed,
    )
    if table_embedder is not None:
        table_embedder.n_computed = int(run.n_embeddings_computed or 0)
        table_embedder.n_cached = int(run.n_embeddings_cached or 0)
        if run.embed_devices:
            table_embedder.embedder.params["embedder.device"] = ",".join(run.embed_devices)
    inputs, result = described_inputs(run)
    evaluation = evaluate_inputs(
        inputs,
        cfg,
        label=label,
        table_embedder=table_embedder,
        scored=(result, run.finished.digest),
    )
    return evaluation, table_embedder
