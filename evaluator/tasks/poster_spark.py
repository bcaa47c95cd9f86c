"""``engine=spark`` for the poster task: Spark computes the per-video outcomes, the rest is local.

`spark_scored` runs `evaluator.engines.spark.spark_score_poster` (read, check, embed and score
on the executors; merge and finish on the driver) and returns the same `Scored` answer as the
local engine, so the statistics, tables, plots, report and MLflow record are made by the very
code ``engine=local`` uses. The tables themselves never come to the driver: only the per-video
outcomes, and the gallery frames' image paths when the HTML report is on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from evaluator.core.poster import PosterSettings
from evaluator.engines.local import Scored, TableInfo
from evaluator.engines.spark import SparkEmbedOptions, spark_score_poster
from evaluator.engines.spark_inputs import SparkPosterTable


def _info(table: SparkPosterTable) -> TableInfo:
    """What the record says of a table Spark read: its source string as given (a URI, a folder
    of part files or ``table:NAME``), never a local path made of it."""
    source = table.source
    return TableInfo(Path(source), source, table.columns, table.rank_source, location=source)


def spark_scored(cfg: DictConfig, settings: PosterSettings, table_embedder: Any) -> Scored:
    """Score ``data.experts`` / ``data.predictions`` with ``engine=spark``.

    Args:
        cfg: the composed ``video-eval`` config (``engine=spark``).
        settings: its checked settings.
        table_embedder: the image embedder (`evaluator.tasks.poster.build_table_embedder`) whose
            model the executors run, or None (the ``embedding`` column).

    Returns:
        The engine's answer, as `evaluator.engines.local` gives it.

    Raises:
        InputError: pyspark / Java missing, bad input, or a Spark job that failed in the end.
    """
    embed = None
    if table_embedder is not None:
        cache = table_embedder.cache
        embed = SparkEmbedOptions(
            table_embedder.embedder,
            None if cache is None else str(cache.root),
            None if cfg.data.image_root is None else str(cfg.data.image_root),
            table_embedder.keep_all_experts,
        )
    gallery = OmegaConf.select(cfg, "report.max_gallery_videos", default=None)
    run = spark_score_poster(
        cfg.engine,
        str(cfg.data.experts),
        str(cfg.data.predictions),
        settings,
        judge_frames=bool(OmegaConf.select(cfg, "report.html", default=False)),
        embed=embed,
        max_gallery_videos=None if gallery is None else int(gallery),
    )
    if table_embedder is not None:
        table_embedder.n_computed = int(run.n_embeddings_computed or 0)
        table_embedder.n_cached = int(run.n_embeddings_cached or 0)
        table_embedder.n_not_embedded = int(run.n_frames_not_embedded or 0)
        table_embedder.n_decoded = None  # decoded on the executors, not counted
        table_embedder.seconds = run.embed_seconds
        if run.embed_devices:
            table_embedder.embedder.params["embedder.device"] = ",".join(run.embed_devices)
    dim = run.experts.dim if settings.min_cosine is not None else None
    return Scored(
        run.finished, _info(run.experts), _info(run.predictions), dim, gallery=run.gallery
    )
