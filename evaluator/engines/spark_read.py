"""Input tables of ``engine=spark`` as Spark DataFrames, checked column by column on Spark.

A source is a file, a folder of part files, any URI Spark reads (``s3a://``, ``hdfs://``,
``abfss://``, ``dbfs:/``), or a table of the session's catalog (``table:NAME``). The format comes
from the extension (``.parquet``, ``.csv``, ``.jsonl`` / ``.json``; for a local folder, from its
part files); a ``parquet:``, ``csv:``, ``json:``, ``orc:`` or ``delta:`` prefix names it explicitly
(default parquet). The checks are those of the local engine (docs/inputs.md#what-is-refused), made
by one aggregation per table on the executors; an error names the source, the column and up to five
offending rows by their values (a distributed table has no row numbers).

Every table gets two ordering columns, ``_file`` (position of its file among the source's files
sorted by name) and ``_row`` (increasing within a file in file order), so videos can be numbered
in the order a single-process reader meets them: that order decides which videos a bootstrap
resample draws, so it must not depend on how Spark splits the files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluator.errors import InputError
from evaluator.io import rules

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

FORMATS = {"parquet": "parquet", "csv": "csv", "jsonl": "json", "json": "json", "orc": "orc"}
PREFIXES = ("table", "parquet", "csv", "json", "jsonl", "orc", "delta")
# Files mapped to their sorted position with one literal map; beyond this, Spark's own order.
MAX_MAPPED_FILES = 16_384
ORDER_COLUMNS = ("_file", "_row")


def _F() -> Any:
    from pyspark.sql import functions

    return functions


def parse_source(source: str) -> tuple[str, str]:
    """(format, location) of a source string: ``table:NAME``, ``csv:PATH`` or a plain path.

    >>> parse_source("table:main.qc.experts")
    ('table', 'main.qc.experts')
    >>> parse_source("s3a://bucket/experts/")
    ('parquet', 's3a://bucket/experts/')
    >>> parse_source("data/experts.csv")
    ('csv', 'data/experts.csv')
    """
    head, sep, rest = source.partition(":")
    if sep and head.lower() in PREFIXES and not rest.startswith("//"):
        fmt = head.lower()
        return ("json" if fmt == "jsonl" else fmt), rest
    suffix = Path(source.rstrip("/")).suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return FORMATS[suffix], source
    if "://" not in source and os.path.isdir(source):
        for _, _, names in os.walk(source):
            for name in sorted(names):
                ext = Path(name).suffix.lower().lstrip(".")
                if ext in FORMATS and not name.startswith(("_", ".")):
                    return FORMATS[ext], source
    return "parquet", source


def read_source(spark: SparkSession, source: str, *, text_columns: Sequence[str]) -> DataFrame:
    """Read a source as a DataFrame with the ``_file`` / ``_row`` ordering columns.

    Args:
        spark: the session.
        source: see the module docstring.
        text_columns: columns a CSV source keeps as text (so ``"007"`` keeps its zeros); the
            others get Spark's inferred types, as the local reader infers them.

    Raises:
        InputError: the source does not exist or cannot be read, or has no rows.
    """
    F = _F()
    fmt, location = parse_source(source)
    local = "://" not in location and fmt != "table" and ":" not in location.split("/")[0]
    if local and not os.path.exists(location):
        raise InputError(f"{source}: file not found (looked in {Path(location).resolve().parent}).")
    if local:
        # A Spark Connect server resolves relative paths against its own folder, not ours.
        location = os.path.abspath(location)
    try:
        if fmt == "table":
            frame = spark.table(location)
        elif fmt == "csv":
            frame = _read_csv(spark, location, text_columns)
        elif fmt == "json":
            frame = spark.read.options(mode="FAILFAST").json(location)
        else:
            frame = spark.read.format(fmt).load(location)
        files = sorted(frame.inputFiles())
    except Exception as exc:  # AnalysisException, Py4JJavaError: no common base class
        raise InputError(f"{source}: cannot be read as {fmt}: {_short_error(exc)}") from None
    if "_corrupt_record" in frame.columns:
        raise InputError(f"{source}: some lines are not valid JSON objects.")
    clash = [c for c in ORDER_COLUMNS if c in frame.columns]
    if clash:
        raise InputError(f"{source}: column {clash[0]!r} is reserved by engine=spark; rename it.")
    if 0 < len(files) <= MAX_MAPPED_FILES and fmt != "table":
        mapping = F.create_map(*[x for i, f in enumerate(files) for x in (F.lit(f), F.lit(i))])
        file_index = F.coalesce(mapping[F.input_file_name()], F.lit(0))
    else:
        file_index = F.lit(0)
    return frame.withColumn("_file", file_index.cast("int")).withColumn(
        "_row", F.monotonically_increasing_id()
    )


def _read_csv(spark: SparkSession, location: str, text_columns: Sequence[str]) -> DataFrame:
    from pyspark.sql.types import IntegerType, LongType, StringType, StructField, StructType

    reader = spark.read.options(header="true", mode="FAILFAST")
    inferred = reader.options(inferSchema="true").csv(location).schema
    text = {*text_columns, "embedding"}

    def kind(field: StructField) -> Any:
        if field.name in text:
            return StringType()
        # Integers are 64-bit, as the local (Arrow) reader infers them.
        return LongType() if isinstance(field.dataType, IntegerType) else field.dataType

    schema = StructType([StructField(f.name, kind(f)) for f in inferred])
    return reader.schema(schema).csv(location)


def _short_error(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


@dataclass(frozen=True)
class Check:
    """One row-level check: rows where ``bad`` holds are refused with ``problem``."""

    column: str
    problem: str
    bad: Column


def _describe(rows: list[Any], columns: Sequence[str]) -> str:
    return ", ".join(
        "(" + ", ".join(f"{c}={rules.shown_value(row[c])}" for c in columns if c in row) + ")"
        for row in rows
    )


def run_checks(frame: DataFrame, source: str, checks: Sequence[Check], shown: Sequence[str]) -> int:
    """Count every check's offending rows in one pass; raise for the first check that fails.

    Args:
        frame: the table.
        source: how messages name it.
        checks: in the order their errors are reported.
        shown: the columns shown of an offending row (the checked column comes first).

    Returns:
        The table's number of rows.

    Raises:
        InputError: ``{source}: column 'c': problem in N rows: (video_id='a', c=...), ...``.
    """
    F = _F()
    aggs = [F.count(F.lit(1)).alias("_n")]
    aggs += [F.sum(F.when(c.bad, 1).otherwise(0)).alias(f"_c{i}") for i, c in enumerate(checks)]
    counts = frame.agg(*aggs).collect()[0]
    n = int(counts["_n"])
    if n == 0:
        raise rules.empty_table_error(source)
    for i, check in enumerate(checks):
        bad = int(counts[f"_c{i}"] or 0)
        if bad:
            cols = [check.column, *[c for c in shown if c != check.column]]
            cols = [c for c in cols if c in frame.columns]
            rows = (
                frame.filter(check.bad)
                .orderBy(*ORDER_COLUMNS)
                .select(*cols)
                .limit(rules.MAX_ROWS_SHOWN)
            )
            listed = _describe(rows.collect(), cols) + rules.and_more(bad)
            raise rules.rows_error(source, check.column, check.problem, bad, listed)
    return n


def require_columns(frame: DataFrame, source: str, columns: Sequence[str], role: str) -> None:
    """Raise an InputError naming every required column the table lacks."""
    found = [c for c in frame.columns if c not in ORDER_COLUMNS]
    missing = [c for c in columns if c not in found]
    if missing:
        raise rules.missing_columns_error(source, missing, found, role)


def _type_name(frame: DataFrame, column: str) -> str:
    return str(frame.schema[column].dataType.simpleString())


def is_numeric(frame: DataFrame, column: str) -> bool:
    return _type_name(frame, column) in {
        "tinyint",
        "smallint",
        "int",
        "bigint",
        "float",
        "double",
    } or _type_name(frame, column).startswith("decimal")


def video_id_column(frame: DataFrame, source: str) -> DataFrame:
    """``video_id`` as text (integers become their decimal text); other types are refused."""
    F = _F()
    kind = _type_name(frame, "video_id")
    if kind in {"tinyint", "smallint", "int", "bigint"}:
        return frame.withColumn("video_id", F.col("video_id").cast("string"))
    if kind != "string":
        raise rules.video_id_type_error(source, kind)
    return frame


def numeric_column(
    frame: DataFrame, source: str, column: str, what: str
) -> tuple[DataFrame, Check]:
    """``column`` as double, and the check refusing text that is not a number.

    Missing values become null; the caller's range check reports them with NaN and inf. A text
    column keeps its original text as ``_raw_<column>`` for the check (`drop_raw` removes it).
    """
    F = _F()
    kind = _type_name(frame, column)
    if is_numeric(frame, column):
        return frame.withColumn(column, F.col(column).cast("double")), Check(
            column, "", F.lit(False)
        )
    if kind not in {"string", "void"}:
        raise rules.wrong_type_error(source, column, what, kind)
    raw = f"_raw_{column}"
    frame = frame.withColumn(raw, F.col(column)).withColumn(
        column, F.expr(f"try_cast(trim(`{column}`) AS double)")
    )
    not_number = (
        F.col(raw).isNotNull()
        & F.col(column).isNull()
        & ~F.lower(F.trim(F.col(raw))).isin("", "nan", "null", "none")
    )
    return frame, Check(column, rules.wrong_text(what), not_number)


def finite(column: str) -> Column:
    """A double column is set, not NaN and not infinite."""
    F = _F()
    c = F.col(column)
    return c.isNotNull() & ~F.isnan(c) & (F.abs(c) != float("inf"))


def drop_raw(frame: DataFrame) -> DataFrame:
    """Drop the ``_raw_*`` columns the text-to-number checks used."""
    return frame.drop(*[c for c in frame.columns if c.startswith("_raw_")])
