"""The poster and episode tables of ``engine=spark``: read and checked on Spark.

The checks are those of docs/inputs.md#what-is-refused.

The rules and messages are the local engine's (`evaluator.io.rules`, `evaluator.io.episode`);
only the rows are named by their values instead of their numbers. A duplicate rank within a
video is found while the videos are scored (each video's rows meet there anyway) and refused
before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from evaluator.engines.spark_read import (
    ORDER_COLUMNS,
    Check,
    drop_raw,
    finite,
    numeric_column,
    read_source,
    require_columns,
    run_checks,
    video_id_column,
)
from evaluator.io.rules import (
    EMBEDDING_EMPTY,
    EMBEDDING_MISSING,
    EMBEDDING_NOT_ARRAY,
    EMBEDDING_NOT_FINITE,
    IMAGE_COLUMNS,
    KNOWN_COLUMNS,
    MISSING_FILE_PATH,
    MISSING_VIDEO_ID,
    NUMERIC_COLUMNS,
    RowRule,
    different_lengths,
    empty_table_error,
    missing_images_error,
    missing_rank_error,
    missing_vectors_error,
    other_dim_error,
    wrong_type_error,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

KNOWN = {*KNOWN_COLUMNS, *ORDER_COLUMNS}
SHOWN = ("video_id", "timestamp")


def _F() -> Any:
    from pyspark.sql import functions

    return functions


@dataclass(frozen=True)
class SparkPosterTable:
    """One checked poster table on Spark.

    Attributes:
        source: the source string (names the table in messages).
        frame: ``video_id`` (text), ``timestamp`` (double), ``rank`` (long) or ``score``
            (double) for predictions, ``embedding`` (array<float>) when vectors are used,
            the image column when frames are embedded, ``_key`` (the row's other columns as
            JSON text, experts only, for exact-duplicate detection), ``_file``, ``_row``.
        columns: the source's own columns, in order.
        n_rows: number of rows.
        dim: the embedding length, or None.
        rank_source: "rank", "score" or "" (experts).
        image_column: ``image`` / ``video_path`` when frames are embedded, else None.
    """

    source: str
    frame: DataFrame
    columns: tuple[str, ...]
    n_rows: int
    dim: int | None
    rank_source: str
    image_column: str | None


def _broken(rule: RowRule) -> Column:
    """The rows of a double column that break ``rule`` (`evaluator.io.rules.bad_rows` on Spark)."""
    F = _F()
    c = F.col(rule.column)
    bad = F.lit(False)
    if rule.finite:
        bad = bad | ~finite(rule.column)
    if rule.whole:
        bad = bad | (c != F.round(c))
    if rule.low is not None:
        bad = bad | (c < rule.low)
    if rule.high is not None:
        bad = bad | (c > rule.high)
    return bad


def _number_checks(frame: DataFrame, source: str, column: str) -> tuple[DataFrame, list[Check]]:
    """``column`` as double, with its type check and its rules (`NUMERIC_COLUMNS`)."""
    what, rules = NUMERIC_COLUMNS[column]
    frame, check = numeric_column(frame, source, column, what)
    return frame, [check, *(Check(column, r.problem, _broken(r)) for r in rules)]


def _embedding_checks(frame: DataFrame, source: str) -> tuple[DataFrame, list[Check]]:
    """``embedding`` as array<float> and its row checks (missing, empty, not numbers, NaN/inf)."""
    F = _F()
    kind = frame.schema["embedding"].dataType.simpleString()
    checks: list[Check] = []
    if kind == "string":
        parsed = F.from_json(F.trim(F.col("embedding")), "array<double>")
        not_array = F.col("embedding").isNotNull() & (
            parsed.isNull() | ~F.trim(F.col("embedding")).startswith("[")
        )
        checks.append(Check("embedding", EMBEDDING_NOT_ARRAY, not_array))
        frame = frame.withColumn("_raw_embedding", F.col("embedding")).withColumn(
            "embedding", parsed
        )
    elif not kind.startswith("array<"):
        raise wrong_type_error(source, "embedding", "a list of numbers per row", kind)
    else:
        inner = kind[len("array<") : -1]
        if inner not in {"tinyint", "smallint", "int", "bigint", "float", "double", "void"}:
            raise wrong_type_error(source, "embedding", "numbers inside the vectors", inner)
    # One conversion to float32, as the local engine stores vectors; too large becomes inf.
    frame = frame.withColumn("embedding", F.transform("embedding", lambda x: x.cast("float")))
    emb = F.col("embedding")
    raw_missing = F.col("_raw_embedding").isNull() if kind == "string" else emb.isNull()
    not_finite = F.exists(emb, lambda x: x.isNull() | F.isnan(x) | (F.abs(x) == float("inf")))
    checks += [
        Check("embedding", EMBEDDING_MISSING, raw_missing),
        Check("embedding", EMBEDDING_EMPTY, emb.isNotNull() & (F.size(emb) == 0)),
        Check("embedding", EMBEDDING_NOT_FINITE, emb.isNotNull() & not_finite),
    ]
    return frame, checks


def _common_dim(frame: DataFrame, source: str) -> int:
    """The one embedding length of a table; rows of another length are refused."""
    F = _F()
    lengths = frame.groupBy(F.size("embedding").alias("d")).count().collect()
    counts = {int(r["d"]): int(r["count"]) for r in lengths}
    dim = max(counts, key=lambda d: (counts[d], -d))
    if len(counts) > 1:
        odd = sorted(d for d in counts if d != dim)
        bad = F.size("embedding") != dim
        run_checks(frame, source, [Check("embedding", different_lengths(dim, odd), bad)], SHOWN)
    return dim


def _row_checks(
    frame: DataFrame, source: str, role: str, columns: tuple[str, ...]
) -> tuple[DataFrame, list[Check], str]:
    """The id, time and rank checks of a table; returns the rank source ("" for experts)."""
    F = _F()
    require_columns(frame, source, ["video_id", "timestamp"], role)
    if role == "predictions" and "rank" not in columns and "score" not in columns:
        raise missing_rank_error(source, columns)
    frame = video_id_column(frame, source)
    checks = [Check("video_id", MISSING_VIDEO_ID, F.col("video_id").isNull())]
    frame, more = _number_checks(frame, source, "timestamp")
    rank_source = ""
    if role == "predictions":
        rank_source = "rank" if "rank" in columns else "score"
        frame, ranks = _number_checks(frame, source, rank_source)
        more += ranks
    return frame, checks + more, rank_source


def _vector_checks(
    frame: DataFrame,
    source: str,
    role: str,
    columns: tuple[str, ...],
    embed_images: bool,
    embedder_hint: str,
) -> tuple[DataFrame, list[Check], str | None]:
    """The checks of the frames to embed, or of the vectors; returns the image column."""
    F = _F()
    if not embed_images:
        if "embedding" not in columns:
            raise missing_vectors_error(source, role, columns, embedder_hint)
        frame, checks = _embedding_checks(frame, source)
        return frame, checks, None
    image_column = next((c for c in IMAGE_COLUMNS if c in columns), None)
    if image_column is None:
        raise missing_images_error(source, role)
    frame = frame.withColumn(image_column, F.col(image_column).cast("string"))
    missing = F.col(image_column).isNull() | (F.trim(F.col(image_column)) == "")
    return frame, [Check(image_column, MISSING_FILE_PATH, missing)], image_column


def _kept_columns(
    frame: DataFrame, table: SparkPosterTable, role: str, image_column: str | None
) -> DataFrame:
    """The columns the evaluation uses (`SparkPosterTable.frame`), in their engine types."""
    F = _F()
    keep = ["video_id", "timestamp"]
    if table.rank_source:
        keep.append(table.rank_source)
    if table.dim is not None:
        keep.append("embedding")
    if image_column is not None:
        keep.append(image_column)
    if "image" in table.columns and image_column != "image":
        # The report's gallery shows thumbnails of these frames.
        frame = frame.withColumn("image", F.col("image").cast("string"))
        keep.append("image")
    if role == "experts":
        # The other columns decide which rows are exact duplicates (the local row key).
        other = [c for c in table.columns if c not in KNOWN]
        if other:
            frame = frame.withColumn("_key", F.to_json(F.struct(*[F.col(c) for c in other])))
            keep.append("_key")
    if table.rank_source == "rank":
        frame = frame.withColumn("rank", F.col("rank").cast("long"))
    return frame.select(*keep, *ORDER_COLUMNS)


def poster_table(
    spark: SparkSession,
    source: str,
    *,
    role: str,
    need_embeddings: bool,
    embed_images: bool,
    embedder_hint: str = "embedder=torchvision",
) -> SparkPosterTable:
    """Read and check one poster table on Spark.

    The rules and messages are those of `evaluator.io.rules`, made by one aggregation.

    Args:
        spark: the session.
        source: a path, folder, URI or ``table:NAME``.
        role: "experts" or "predictions".
        need_embeddings: the match rule uses cosine similarity.
        embed_images: vectors are computed from the ``image`` / ``video_path`` column.
        embedder_hint: the override that enables an image embedder, for messages.

    Raises:
        InputError: every bad-input class listed in docs/inputs.md#what-is-refused (duplicate
            ranks excepted, see the module docstring).
    """
    frame = read_source(spark, source, text_columns=("video_id",))
    columns = tuple(c for c in frame.columns if c not in ORDER_COLUMNS)
    frame, checks, rank_source = _row_checks(frame, source, role, columns)
    image_column = None
    if need_embeddings:
        frame, more, image_column = _vector_checks(
            frame, source, role, columns, embed_images, embedder_hint
        )
        checks += more
    n_rows = run_checks(frame, source, checks, SHOWN)
    frame = drop_raw(frame)
    dim = _common_dim(frame, source) if need_embeddings and not embed_images else None
    table = SparkPosterTable(source, frame, columns, n_rows, dim, rank_source, image_column)
    return replace(table, frame=_kept_columns(frame, table, role, image_column))


def check_same_dim(experts: SparkPosterTable, predictions: SparkPosterTable) -> None:
    """Both tables need one embedding length D."""
    if experts.dim is not None and predictions.dim is not None and experts.dim != predictions.dim:
        raise other_dim_error(
            predictions.source,
            "table",
            predictions.dim,
            f"the experts table {experts.source}",
            experts.dim,
        )


# ------------------------------------------------------------------------------------ episodes


def episode_arrow(spark: SparkSession, source: str, columns: tuple[str, ...]) -> Any:
    """An episode table's columns as one Arrow table, in the source's row order.

    The table has one row per video, the evaluation's own size, so it is checked on the driver
    by the local engine's code (`evaluator.io.episode.episode_table`): the same messages, with
    row numbers counted in file order (files sorted by name).

    Args:
        spark: the session.
        source: a path, folder, URI or ``table:NAME``.
        columns: the columns to bring back (those present are taken).

    Raises:
        InputError: the source cannot be read.
    """
    text_columns = ("video_id", "series_id", "text_read", "text_true")
    frame = read_source(spark, source, text_columns=text_columns)
    keep = [c for c in dict.fromkeys(columns) if c in frame.columns]
    table = frame.orderBy(*ORDER_COLUMNS).select(*keep).toArrow()
    if table.num_rows == 0:
        raise empty_table_error(source)
    return table
