"""The Spark engine (``engine=spark``): the same evaluation, with the per-video work on executors.

What runs where:

- driver: the config, the checks' verdicts, the per-video outcomes (a few numbers per video, no
  frame vectors), the statistics over videos (means, bootstrap, sweep), the report, the result
  files and the MLflow record: the code of ``engine=local``.
- executors: reading and checking the tables (`evaluator.engines.spark_inputs`), embedding frames
  (`evaluator.engines.spark_embed`) and scoring the videos with the pure core
  (`evaluator.engines.spark_poster`).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluator.core.partials import FinishedPoster
from evaluator.core.poster import PosterSettings
from evaluator.engines.local import require_eligible
from evaluator.engines.spark_candidates import needed_frames
from evaluator.engines.spark_embed import SparkEmbedding, check_frames, embed_table, image_root_of
from evaluator.engines.spark_inputs import (
    SparkPosterTable,
    check_same_dim,
    episode_arrow,
    poster_table,
)
from evaluator.engines.spark_package import evaluator_session
from evaluator.engines.spark_poster import score_on_spark
from evaluator.engines.spark_session import job_error
from evaluator.engines.units import finish_scored
from evaluator.errors import InputError
from evaluator.io.episode import CARRIED_COLUMNS, REQUIRED_COLUMNS, EpisodeTable, episode_table
from evaluator.io.episode_text import OPTIONAL_TEXT_COLUMNS
from evaluator.report.gallery import GalleryFrames


def session_args(engine: Any) -> dict[str, Any]:
    """`evaluator_session`'s arguments from the ``engine`` config group."""
    return {
        "master": str(engine.master),
        "conf": engine.conf,
        "ship_package": bool(getattr(engine, "ship_package", False)),
    }


def spark_episode_table(engine: Any, source: str, *, group_by: str | None) -> EpisodeTable:
    """The episode table read by Spark, checked as the local engine checks a file.

    Args:
        engine: the ``engine`` config group (``master``, ``conf``, ``ship_package``).
        source: ``data.episodes``: a path, folder of part files, URI or ``table:NAME``.
        group_by: ``episode.group_by``.

    Raises:
        InputError: pyspark / Java missing, an unreadable source, or bad rows.
    """
    columns = (
        *REQUIRED_COLUMNS,
        *CARRIED_COLUMNS,
        *OPTIONAL_TEXT_COLUMNS,
        *([group_by] if group_by else []),
    )
    with evaluator_session(**session_args(engine)) as spark:
        try:
            table = episode_arrow(spark, source, columns)
        except Exception as exc:
            if isinstance(exc, InputError):
                raise
            raise job_error(exc, f"reading {source}") from None
    return episode_table(Path(source), table, group_by=group_by)


@dataclass(frozen=True)
class SparkPosterRun:
    """What the Spark engine produced for one poster evaluation.

    Attributes:
        finished: the merged result (`evaluator.core.partials.finish`).
        experts / predictions: the checked tables (source, columns, rows, embedding length).
        n_embeddings_computed / n_embeddings_cached: frames embedded now / found in the cache
            (both tables; None without an image embedder).
        embed_devices: the devices the executors embedded on.
        n_frames_not_embedded: distinct frames of the two tables that got no vector (they can
            change no number; None without an image embedder).
        embed_seconds: wall time of checking and embedding the frames.
        gallery: the report gallery's frames (video codes of ``finished``), or None.
    """

    finished: FinishedPoster
    experts: SparkPosterTable
    predictions: SparkPosterTable
    n_embeddings_computed: int | None = None
    n_embeddings_cached: int | None = None
    embed_devices: tuple[str, ...] = ()
    n_frames_not_embedded: int | None = None
    embed_seconds: float = 0.0
    gallery: GalleryFrames | None = None


@dataclass(frozen=True)
class SparkEmbedOptions:
    """An image embedder for ``engine=spark``: the driver's embedder, cache and image root."""

    embedder: Any
    cache_root: str | None
    image_root: str | None
    keep_all_experts: bool = False  # matching.center=experts: every eligible expert frame


def spark_score_poster(
    engine: Any,
    experts_source: str,
    predictions_source: str,
    settings: PosterSettings,
    *,
    judge_frames: bool,
    embed: SparkEmbedOptions | None = None,
    max_gallery_videos: int | None = None,
) -> SparkPosterRun:
    """Read, check, (embed) and score both tables on Spark; finish on the driver.

    Args:
        engine: the ``engine`` config group (``master``, ``conf``, ``ship_package``,
            ``memory_budget_mb``).
        experts_source / predictions_source: ``data.experts`` / ``data.predictions``.
        settings: the checked settings.
        judge_frames: keep the frame-by-frame view (the HTML report's gallery).
        embed: compute the vectors from the frames, or None (``embedding`` column).
        max_gallery_videos: gallery videos kept (None: all).

    Raises:
        InputError: pyspark / Java missing, unreadable sources, bad rows.
        SparkJobError: a failed job, naming the failing stage's error.
    """
    need = settings.min_cosine is not None
    with evaluator_session(**session_args(engine)) as spark:
        step = "reading the inputs"
        try:
            images = need and embed is not None
            experts, predictions = (
                poster_table(spark, src, role=role, need_embeddings=need, embed_images=images)
                for src, role in ((experts_source, "experts"), (predictions_source, "predictions"))
            )
            counts: list[int] = []
            devices: set[str] = set()
            n_left_out = 0
            embed_seconds = 0.0
            embedded: list[SparkEmbedding] = []
            try:
                if need and embed is not None:
                    step = "embedding the frames"
                    started = time.perf_counter()
                    roots = [
                        image_root_of(t.source, embed.image_root) for t in (experts, predictions)
                    ]
                    for table, root in zip((experts, predictions), roots, strict=True):
                        check_frames(table, root)
                    wanted = needed_frames(
                        experts,
                        predictions,
                        k_max=settings.k_max,
                        min_expert_frames=settings.min_expert_frames,
                        window_s=settings.candidate_window_s,
                        keep_all_experts=embed.keep_all_experts,
                    )
                    tables = []
                    for table, root, only in zip(
                        (experts, predictions), roots, wanted, strict=True
                    ):
                        done = embed_table(table, embed.embedder, embed.cache_root, root, only)
                        embedded.append(done)
                        tables.append(done.table)
                        counts += [done.n_computed, done.n_cached]
                        devices.update(done.devices)
                        n_left_out += done.n_left_out
                    experts, predictions = tables
                    embed_seconds = time.perf_counter() - started
                check_same_dim(experts, predictions)
                step = "scoring the videos"
                merged = score_on_spark(
                    experts,
                    predictions,
                    settings,
                    judge_frames=judge_frames,
                    memory_budget_mb=int(engine.memory_budget_mb),
                    max_gallery_videos=max_gallery_videos,
                )
            finally:
                for done in embedded:
                    with contextlib.suppress(Exception):  # a session that died meanwhile
                        done.release()
        except Exception as exc:
            if isinstance(exc, InputError):  # already readable
                raise
            raise job_error(exc, step) from None
    finished, gallery = finish_scored(merged, settings)
    require_eligible(finished, settings, experts_source, "table")
    return SparkPosterRun(
        finished,
        experts,
        predictions,
        counts[0] + counts[2] if counts else None,
        counts[1] + counts[3] if counts else None,
        tuple(sorted(devices)),
        n_left_out if counts else None,
        embed_seconds,
        gallery,
    )
