"""The rules of the poster tables and their messages: one table for both readers.

docs/inputs.md#what-is-refused lists what is refused. The local reader (`evaluator.io.poster`,
pandas / pyarrow) and the Spark reader (`evaluator.engines.spark_inputs`) both take the rules
and the messages from here: a row rule is applied to numpy arrays by `bad_rows` and to Spark
columns by `evaluator.engines.spark_inputs`; the messages are built by the functions below.
Every message names the table (a file, a part file or a Spark source), the column and, for a
row rule, the offending rows: the local reader by their numbers, Spark by their values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evaluator.errors import InputError

IMAGE_COLUMNS = ("image", "video_path")
# The columns the evaluation reads; an expert table's other columns decide exact duplicates.
KNOWN_COLUMNS = frozenset({"video_id", "timestamp", "rank", "score", "embedding", *IMAGE_COLUMNS})
# The largest timestamp accepted (seconds from the start of a video): 10**10 s is 317 years,
# beyond any video (and beyond Unix times in seconds), and small enough that differences and
# sums of timestamps stay exact to microseconds in float64 and finite everywhere (the report's
# JSON, the plots' axes).
MAX_TIMESTAMP_S = 1e10
TIMESTAMP_PROBLEM = (
    "timestamp must be finite and >= 0, at most 1e10 (seconds from the start of the video); "
    "found a missing, NaN, inf, negative or larger value"
)


@dataclass(frozen=True)
class RowRule:
    """One rule on the values of a numeric column (read as float64; missing values as NaN).

    Attributes:
        column: the column.
        problem: what the message says of the offending rows.
        finite: missing, NaN and infinite values are refused.
        whole: fractional values are refused.
        low / high: values below / above are refused (None: no bound).
    """

    column: str
    problem: str
    finite: bool = False
    whole: bool = False
    low: float | None = None
    high: float | None = None


TIMESTAMP = RowRule("timestamp", TIMESTAMP_PROBLEM, finite=True, low=0.0, high=MAX_TIMESTAMP_S)
RANK_WHOLE = RowRule(
    "rank",
    "rank must be a whole number (found a missing, NaN or fractional value)",
    finite=True,
    whole=True,
)
RANK_MIN = RowRule("rank", "rank must be >= 1 (1 = the model's best frame)", low=1.0)
SCORE = RowRule("score", "score must be a finite number", finite=True)
# The numeric columns: what each holds (for "wrong type" messages) and its rules, in order.
NUMERIC_COLUMNS: dict[str, tuple[str, tuple[RowRule, ...]]] = {
    "timestamp": ("seconds (a number)", (TIMESTAMP,)),
    "rank": ("an integer >= 1", (RANK_WHOLE, RANK_MIN)),
    "score": ("a number (higher is better)", (SCORE,)),
}

MAX_ROWS_SHOWN = 5  # offending rows a message shows
MISSING_VIDEO_ID = "missing video id"
MISSING_FILE_PATH = "missing file path"
DUPLICATE_RANK = "duplicate rank within a video"
EMBEDDING_NOT_ARRAY = "expected a JSON array of numbers such as [0.1, 0.2]"
EMBEDDING_MISSING = "missing embedding vector"
EMBEDDING_EMPTY = "empty embedding vector"
EMBEDDING_NOT_FINITE = (
    "embedding with a missing, NaN or infinite number (or one too large for float32)"
)


def bad_rows(rule: RowRule, values: np.ndarray) -> np.ndarray:
    """Where ``values`` (float64, missing as NaN) break ``rule``: a bool per row."""
    bad = np.zeros(values.shape[0], dtype=bool)
    with np.errstate(invalid="ignore"):
        if rule.finite:
            bad |= ~np.isfinite(values)
        if rule.whole:
            bad |= values != np.round(values)
        if rule.low is not None:
            bad |= values < rule.low
        if rule.high is not None:
            bad |= values > rule.high
    return bad


def shown_value(value: object) -> str:
    """A cell as a message shows it: its repr, cut to 40 characters."""
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 40 else text[:37] + "..."


def and_more(n: int) -> str:
    """`` and N more`` when ``n`` offending rows are more than the message shows."""
    return f" and {n - MAX_ROWS_SHOWN} more" if n > MAX_ROWS_SHOWN else ""


def wrong_text(what: str) -> str:
    """The problem of text that is not a number in a numeric column."""
    return f"wrong type: expected {what}, got text"


def different_lengths(dim: int, odd: Sequence[int]) -> str:
    """The problem of vectors whose length is not the table's most common one."""
    return f"embeddings of different lengths (most rows have {dim}; these have {list(odd)[:5]})"


def rows_error(source: object, column: str, problem: str, n: int, shown: str) -> InputError:
    """``{source}: column '{column}': {problem} in {n} rows: {shown}.``"""
    return InputError(
        f"{source}: column '{column}': {problem} in {n} row{'s' if n != 1 else ''}: {shown}."
    )


def wrong_type_error(source: object, column: str, what: str, kind: object) -> InputError:
    """A column of a type that cannot hold ``what``."""
    return InputError(f"{source}: column '{column}': wrong type: expected {what}, got {kind}.")


def video_id_type_error(source: object, kind: object) -> InputError:
    """A ``video_id`` column neither text nor integers."""
    return InputError(
        f"{source}: column 'video_id': expected text (or integers), got {kind}; video ids "
        f'are always read as text, e.g. "007".'
    )


def empty_table_error(source: object) -> InputError:
    """A table without data rows."""
    return InputError(f"{source}: the table is empty (no data rows).")


def missing_columns_error(
    source: object, missing: Sequence[str], found: Sequence[str], role: str
) -> InputError:
    """Required columns the table lacks, and the columns it has."""
    return InputError(
        f"{source}: missing column{'s' if len(missing) > 1 else ''} "
        f"{', '.join(repr(c) for c in missing)} required in the {role} table; found "
        f"columns {', '.join(repr(c) for c in found)}."
    )


def missing_rank_error(source: object, found: Sequence[str]) -> InputError:
    """A predictions table with neither ``rank`` nor ``score``."""
    return InputError(
        f"{source}: missing column 'rank' or 'score' required in the predictions table (rank: "
        f"integer >= 1, 1 = best; or score: higher is better); found columns "
        f"{', '.join(repr(c) for c in found)}."
    )


def missing_images_error(source: object, role: str) -> InputError:
    """No frames to embed although an image embedder is configured."""
    return InputError(
        f"{source}: missing column 'image' or 'video_path' required in the {role} table "
        f"because an image embedder is configured (it computes every vector from the "
        f"frames); add the column, or use embedder=precomputed with an 'embedding' column."
    )


def missing_vectors_error(
    source: object, role: str, columns: Sequence[str], hint: str
) -> InputError:
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


def other_dim_error(source: object, kind: str, dim: int, other: str, other_dim: int) -> InputError:
    """Vectors of length ``dim`` in ``source`` (a ``kind``: file or table), ``other_dim`` in
    ``other`` (the experts table, or another part)."""
    return InputError(
        f"{source}: column 'embedding': embeddings of different lengths: this {kind} has "
        f"{dim}, {other} has {other_dim}; both tables need one length D."
    )
