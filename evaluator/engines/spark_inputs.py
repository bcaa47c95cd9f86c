"""The poster and episode tables of ``engine=spark``: read and checked on Spark.

The checks are those of docs/inputs.md#what-is-refused.

The rules and messages are the local engine's (`evaluator.io.poster`, `evaluator.io.episode`);
only the rows are named by their values instead of their numbers. A duplicate rank within a
video is found while the videos are scored (each video's rows meet there anyway) and refused
before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
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
from evaluator.errors import InputError
from evaluator.io.tables import MAX_TIMESTAMP_S, TIMESTAMP_PROBLEM

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

IMAGE_COLUMNS = ("image", "video_path")
KNOWN = {"video_id", "timestamp", "rank", "score", "embedding", *IMAGE_COLUMNS, *ORDER_COLUMNS}
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
        checks.append(
            Check("embedding", "expected a JSON array of numbers such as [0.1, 0.2]", not_array)
        )
        frame = frame.withColumn("_raw_embedding", F.col("embedding")).withColumn(
            "embedding", parsed
        )
    elif not kind.startswith("array<"):
        raise InputError(
            f"{source}: column 'embedding': wrong type: expected a list of numbers per row, got "
            f"{kind}."
        )
    else:
        inner = kind[len("array<") : -1]
        if inner not in {"tinyint", "smallint", "int", "bigint", "float", "double", "void"}:
            raise InputError(
                f"{source}: column 'embedding': wrong type: expected numbers inside the vectors, "
                f"got {inner}."
            )
    # One conversion to float32, as the local engine stores vectors; too large becomes inf.
    frame = frame.withColumn("embedding", F.transform("embedding", lambda x: x.cast("float")))
    emb = F.col("embedding")
    raw_missing = F.col("_raw_embedding").isNull() if kind == "string" else emb.isNull()
    checks.append(Check("embedding", "missing embedding vector", raw_missing))
    checks.append(
        Check("embedding", "empty embedding vector", emb.isNotNull() & (F.size(emb) == 0))
    )
    not_finite = F.exists(emb, lambda x: x.isNull() | F.isnan(x) | (F.abs(x) == float("inf")))
    checks.append(
        Check(
            "embedding",
            "embedding with a missing, NaN or infinite number (or one too large for float32)",
            emb.isNotNull() & not_finite,
        )
    )
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
        run_checks(
            frame,
            source,
            [
                Check(
                    "embedding",
                    f"embeddings of different lengths (most rows have {dim}; these have {odd[:5]})",
                    bad,
                )
            ],
            SHOWN,
        )
    return dim


def missing_vectors_error(source: str, role: str, columns: list[str], hint: str) -> InputError:
    """No usable ``embedding`` column although ``matching.min_cosine`` is set."""
    image = next((c for c in IMAGE_COLUMNS if c in columns), None)
    if image is not None:
        return InputError(
            f"{source}: column '{image}' holds frames but no 'embedding' column is given and "
            f"the embedder is 'precomputed'. Enable an image embedder to compute the vectors "
            f"(for example `{hint}`, or `embedder=mobilenet_v2_deepsort`, which works offline), "
            f"add an 'embedding' column, or set matching.min_cosine=null for time-only matching."
        )
    return InputError(
        f"{source}: missing column 'embedding' required in the {role} table because "
        f"matching.min_cosine is set (cosine similarity needs a vector per frame); add an "
        f"'embedding' column (or an 'image' column with {hint}), or set matching.min_cosine=null "
        f"for time-only matching."
    )


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
    F = _F()
    frame = read_source(spark, source, text_columns=("video_id",))
    columns = tuple(c for c in frame.columns if c not in ORDER_COLUMNS)
    require_columns(frame, source, ["video_id", "timestamp"], role)
    if role == "predictions" and "rank" not in columns and "score" not in columns:
        raise InputError(
            f"{source}: missing column 'rank' or 'score' required in the predictions table "
            f"(rank: integer >= 1, 1 = best; or score: higher is better); found columns "
            f"{', '.join(repr(c) for c in columns)}."
        )
    frame = video_id_column(frame, source)
    checks = [Check("video_id", "missing video id", F.col("video_id").isNull())]
    frame, check = numeric_column(frame, source, "timestamp", "seconds (a number)")
    checks += [
        check,
        Check(
            "timestamp",
            TIMESTAMP_PROBLEM,
            ~finite("timestamp")
            | (F.col("timestamp") < 0)
            | (F.col("timestamp") > MAX_TIMESTAMP_S),
        ),
    ]
    rank_source = ""
    if role == "predictions":
        if "rank" in columns:
            rank_source = "rank"
            frame, check = numeric_column(frame, source, "rank", "an integer >= 1")
            r = F.col("rank")
            checks += [
                check,
                Check(
                    "rank",
                    "rank must be a whole number (found a missing, NaN or fractional value)",
                    ~finite("rank") | (r != F.round(r)),
                ),
                Check("rank", "rank must be >= 1 (1 = the model's best frame)", r < 1),
            ]
        else:
            rank_source = "score"
            frame, check = numeric_column(frame, source, "score", "a number (higher is better)")
            checks += [check, Check("score", "score must be a finite number", ~finite("score"))]

    image_column = None
    if need_embeddings and embed_images:
        image_column = next((c for c in IMAGE_COLUMNS if c in columns), None)
        if image_column is None:
            raise InputError(
                f"{source}: missing column 'image' or 'video_path' required in the {role} table "
                f"because an image embedder is configured (it computes every vector from the "
                f"frames); add the column, or use embedder=precomputed with an 'embedding' column."
            )
        frame = frame.withColumn(image_column, F.col(image_column).cast("string"))
        checks.append(
            Check(
                image_column,
                "missing file path",
                F.col(image_column).isNull() | (F.trim(F.col(image_column)) == ""),
            )
        )
    elif need_embeddings:
        if "embedding" not in columns:
            raise missing_vectors_error(source, role, list(columns), embedder_hint)
        frame, emb_checks = _embedding_checks(frame, source)
        checks += emb_checks
    n_rows = run_checks(frame, source, checks, SHOWN)
    frame = drop_raw(frame)
    dim = _common_dim(frame, source) if need_embeddings and not embed_images else None

    keep = ["video_id", "timestamp"]
    if rank_source:
        keep.append(rank_source)
    if dim is not None:
        keep.append("embedding")
    if image_column is not None:
        keep.append(image_column)
    if "image" in columns and image_column != "image":
        # The report's gallery shows thumbnails of these frames.
        frame = frame.withColumn("image", F.col("image").cast("string"))
        keep.append("image")
    if role == "experts":
        # The other columns decide which rows are exact duplicates (the local row key).
        other = [c for c in columns if c not in KNOWN]
        if other:
            frame = frame.withColumn("_key", F.to_json(F.struct(*[F.col(c) for c in other])))
            keep.append("_key")
    if rank_source == "rank":
        frame = frame.withColumn("rank", F.col("rank").cast("long"))
    frame = frame.select(*keep, *ORDER_COLUMNS)
    return SparkPosterTable(source, frame, columns, n_rows, dim, rank_source, image_column)


def check_same_dim(experts: SparkPosterTable, predictions: SparkPosterTable) -> None:
    """Both tables need one embedding length D."""
    if experts.dim is not None and predictions.dim is not None and experts.dim != predictions.dim:
        raise InputError(
            f"{predictions.source}: column 'embedding': embeddings of different lengths: this "
            f"table has {predictions.dim}, the experts table {experts.source} has "
            f"{experts.dim}; both tables need one length D."
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
        raise InputError(f"{source}: the table is empty (no data rows).")
    return table
