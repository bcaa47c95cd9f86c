"""Scoring the poster task's videos on Spark executors, with the pure core.

Every video is put in one of B buckets by a hash of its id; both tables are grouped by bucket
and cogrouped (``groupBy("_bucket").cogroup(...).applyInPandas``), so each call of the scoring
function gets all expert and prediction rows of its videos and scores them with
`evaluator.engines.units.score_unit` (the core, as ``engine=local`` runs it). What comes back to
the driver is one `evaluator.report.gallery.ScoredSet` per bucket: per-video outcomes, sweep
hit counts, the gallery's frames; never the rows or their vectors. The driver merges them and
`evaluator.engines.units.finish_scored` computes every statistic in the canonical video order,
so the numbers are those of ``engine=local`` to the last bit.

The canonical order is the order in which a single reader meets the videos: all expert rows,
then all prediction rows, files by name, rows in file order. It is carried as the ``__order``
column: side (bit 62), file position (bits 48-61) and Spark's row id (increasing within a file,
below bit 48).

Memory: an executor holds one bucket at a time (B is chosen so a bucket's rows take about
``engine.memory_budget_mb`` / 4); the driver holds the per-video outcomes (about 200 bytes per
video, plus the gallery's frames when the HTML report is on). They arrive bucket by bucket (a
partition at a time on a classic session, as Arrow batches over Spark Connect) and are merged
as they arrive (`merge_arriving`), never gathered into one frame first.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from evaluator.core.partials import empty_partial
from evaluator.core.poster import PosterSettings
from evaluator.engines.spark_inputs import SparkPosterTable
from evaluator.engines.spark_read import MAX_MAPPED_FILES
from evaluator.engines.spark_session import is_connect, parallelism
from evaluator.report.gallery import ScoredSet, merge_scored

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

ORDER = "__order"
BUCKET = "_bucket"
SIDE_BIT = 62
FILE_BIT = 48
OUTPUT = f"{BUCKET} long, payload binary"
# A bucket's rows are about this share of engine.memory_budget_mb (the core's working set and
# the pandas copies take the rest).
BUCKET_SHARE = 0.25
# Bucket partials the driver merges at a time as they arrive.
MERGE_BATCH = 64

# Every mapped file position fits the bits between FILE_BIT and SIDE_BIT.
assert MAX_MAPPED_FILES <= 1 << (SIDE_BIT - FILE_BIT)


def _order_key(side: int) -> Column:
    from pyspark.sql import functions as F

    return (
        F.lit(side << SIDE_BIT) + F.shiftleft(F.col("_file").cast("long"), FILE_BIT) + F.col("_row")
    ).alias(ORDER)


def bucket_count(
    experts: SparkPosterTable, predictions: SparkPosterTable, budget_mb: int, parallelism: int
) -> int:
    """Buckets: at least two per core, more when the rows would exceed the per-task budget."""
    dim = experts.dim or 0
    row_bytes = 64 + 4 * dim
    total = (experts.n_rows + predictions.n_rows) * row_bytes
    per_bucket = max(1.0, budget_mb * 2**20 * BUCKET_SHARE)
    return max(2 * max(parallelism, 1), math.ceil(total / per_bucket))


def _score_bucket(
    key: tuple[Any, ...],
    experts: pd.DataFrame,
    predictions: pd.DataFrame,
    *,
    settings: PosterSettings,
    judge_frames: bool,
    labels: tuple[str, str],
) -> pd.DataFrame:
    """applyInPandas body: one bucket's rows -> its pickled partial (one row)."""
    from evaluator.engines.units import score_unit

    # Rows of a video keep their input order (ties between equal scores and timestamps).
    experts = experts.sort_values(ORDER, kind="stable").drop(columns=[BUCKET])
    predictions = predictions.sort_values(ORDER, kind="stable").drop(columns=[BUCKET])
    partial = score_unit(
        _typed(experts.reset_index(drop=True)),
        _typed(predictions.reset_index(drop=True)),
        settings,
        judge_frames=judge_frames,
        experts_label=labels[0],
        predictions_label=labels[1],
        rows_checked=True,  # on Spark, by evaluator.engines.spark_inputs
    )
    payload = pickle.dumps(partial, protocol=pickle.HIGHEST_PROTOCOL)
    return pd.DataFrame({BUCKET: [int(key[0])], "payload": [payload]})


def _typed(frame: pd.DataFrame) -> pa.Table:
    """One side of a bucket as Arrow. A bucket without rows of this table (its videos have no
    predictions, say) comes as an empty frame whose text and vector columns have no type;
    they get theirs back, so the core reads an empty table, not a wrongly typed one."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for i, field in enumerate(table.schema):
        if pa.types.is_null(field.type) and table.num_rows == 0:
            kind = pa.list_(pa.float32()) if field.name == "embedding" else pa.string()
            table = table.set_column(i, field.name, pa.array([], kind))
    return table


def _unit_frame(table: SparkPosterTable, side: int, buckets: int, images: bool) -> DataFrame:
    from pyspark.sql import functions as F

    drop = {"_file", "_row", *([] if images else ["image", "video_path"])}
    columns = [c for c in table.frame.columns if c not in drop]
    return table.frame.select(
        *columns,
        _order_key(side),
        F.pmod(F.xxhash64("video_id"), F.lit(buckets)).alias(BUCKET),
    )


def score_on_spark(
    experts: SparkPosterTable,
    predictions: SparkPosterTable,
    settings: PosterSettings,
    *,
    judge_frames: bool,
    memory_budget_mb: int,
    max_gallery_videos: int | None = None,
) -> ScoredSet:
    """Score every video on the executors and merge the partials on the driver.

    Args:
        experts / predictions: the checked tables (with ``embedding`` when cosines are used).
        settings: the checked settings.
        judge_frames: keep the frame-by-frame view (the HTML report's gallery).
        memory_budget_mb: ``engine.memory_budget_mb``: sizes the buckets.
        max_gallery_videos: gallery videos kept (None: all), as the local engine keeps them.

    Returns:
        The merged partial of every video (`evaluator.engines.units.finish_scored` completes
        it).

    Raises:
        Exception: what the Spark job raised (`evaluator.engines.spark_session.job_error`
            turns it into a readable error).
    """
    spark = experts.frame.sparkSession
    buckets = bucket_count(experts, predictions, memory_budget_mb, parallelism(spark))
    # The gallery shows thumbnails from the `image` column when both tables have one.
    # The gallery's thumbnails: image files, or frames of the videos (`units._images`).
    images = judge_frames and any(
        c in experts.columns and c in predictions.columns for c in ("image", "video_path")
    )
    exp = _unit_frame(experts, 0, buckets, images)
    pred = _unit_frame(predictions, 1, buckets, images)
    labels = (experts.source, predictions.source)

    def score(key: tuple[Any, ...], e: pd.DataFrame, p: pd.DataFrame) -> pd.DataFrame:
        return _score_bucket(key, e, p, settings=settings, judge_frames=judge_frames, labels=labels)

    scored = exp.groupBy(BUCKET).cogroup(pred.groupBy(BUCKET)).applyInPandas(score, OUTPUT)
    # Partitions (classic) / Arrow batches (Connect) arrive one after the other, never the
    # whole result at once.
    rows = scored.toLocalIterator(**({} if is_connect(spark) else {"prefetchPartitions": True}))
    return merge_arriving(
        (pickle.loads(row["payload"]) for row in rows),
        max_gallery_videos=max_gallery_videos,
        empty=lambda: ScoredSet(empty_partial(settings, experts.dim)),
    )


def merge_arriving(
    partials: Iterator[ScoredSet],
    *,
    max_gallery_videos: int | None,
    empty: Callable[[], ScoredSet],
    batch: int = MERGE_BATCH,
) -> ScoredSet:
    """Merge partials as they arrive: every ``batch`` of them becomes one (its gallery capped).

    The driver holds at most ``batch`` bucket partials besides the merged ones, not every
    bucket's partial and then their merge. Capping commutes with merging
    (`evaluator.report.gallery.cap_gallery`), so the result equals one merge of all of them.

    Args:
        partials: the buckets' partials, in any order.
        max_gallery_videos: gallery videos kept (None: all).
        empty: the partial of no video (when nothing arrives).
        batch: partials merged at a time.
    """
    merged: list[ScoredSet] = []
    pending: list[ScoredSet] = []
    for partial in partials:
        pending.append(partial)
        if len(pending) >= batch:
            merged.append(merge_scored(pending, max_gallery_videos=max_gallery_videos))
            pending = []
    merged += pending
    if not merged:
        return empty()
    return merge_scored(merged, max_gallery_videos=max_gallery_videos)
