"""Reading input tables (.parquet, .csv, .jsonl) and checking their columns.

Every problem is reported as an `InputError` whose one-paragraph message names the file, the
column, what was expected and up to five offending rows. Rows are counted from 1 over the data
rows (a CSV header is not a row).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from evaluator.errors import InputError
from evaluator.io.paths import SUPPORTED_SUFFIXES, check_table_path
from evaluator.io.rules import (
    EMBEDDING_EMPTY,
    EMBEDDING_MISSING,
    EMBEDDING_NOT_ARRAY,
    EMBEDDING_NOT_FINITE,
    MAX_ROWS_SHOWN,
    MISSING_VIDEO_ID,
    and_more,
    different_lengths,
    empty_table_error,
    missing_columns_error,
    rows_error,
    shown_value,
    video_id_type_error,
    wrong_text,
    wrong_type_error,
)

__all__ = ["SUPPORTED_SUFFIXES"]  # re-exported: the file types read
# The largest integer float64 holds exactly: every number is computed in float64, so a larger
# integer would silently become a neighbouring value.
MAX_EXACT_INTEGER = 2**53


def describe_rows(
    rows: np.ndarray, table: pd.DataFrame | None = None, columns: Sequence[str] = ()
) -> str:
    """Describe up to five offending rows (0-based positions) as 'row 3 (video_id='a', ...)'."""
    rows = np.asarray(rows)
    # A frame indexed from N (a batch read from the middle of a file) numbers rows from N + 1.
    first = 0
    if table is not None and isinstance(table.index, pd.RangeIndex):
        first = int(table.index.start)
    parts = []
    for r in rows[:MAX_ROWS_SHOWN]:
        detail = ""
        if table is not None and columns:
            values = ", ".join(
                f"{c}={shown_value(table[c].iloc[int(r)])}" for c in columns if c in table
            )
            detail = f" ({values})" if values else ""
        parts.append(f"row {first + int(r) + 1}{detail}")
    return ", ".join(parts) + and_more(len(rows))


def column_error(
    path: Path,
    column: str,
    problem: str,
    rows: np.ndarray,
    table: pd.DataFrame | None = None,
    context: Sequence[str] = ("video_id",),
) -> InputError:
    """Build the standard one-paragraph error: file, column, problem, offending rows."""
    shown = describe_rows(rows, table, [column, *[c for c in context if c != column]])
    return rows_error(path, column, problem, len(rows), shown)


def check_rows(
    bad: np.ndarray,
    path: Path,
    column: str,
    problem: str,
    table: pd.DataFrame | None = None,
    context: Sequence[str] = ("video_id",),
) -> None:
    """Refuse the rows where ``bad`` is true, if any, with `column_error`.

    Raises:
        InputError: ``bad`` has a true row.
    """
    if bad.any():
        raise column_error(path, column, problem, np.flatnonzero(bad), table, context)


def read_table(path: str | Path, *, string_columns: Sequence[str] = ("video_id",)) -> pa.Table:
    """Read a .parquet, .csv or .jsonl file into an Arrow table.

    Args:
        path: the file; its extension selects the format.
        string_columns: columns read as text in CSV files (so "007" keeps its zeros).

    Returns:
        The table as read, before any column checks.

    Raises:
        InputError: the file is missing, has an unsupported extension, cannot be parsed, or
            has no data rows.
    """
    path = check_table_path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            table = pq.read_table(path)
        elif suffix == ".csv":
            header = _csv_header(path)
            types = {c: pa.string() for c in (*string_columns, "embedding") if c in header}
            options = pa_csv.ConvertOptions(column_types=types, strings_can_be_null=True)
            table = pa_csv.read_csv(path, convert_options=options)
        else:
            table = _read_jsonl(path)
    except InputError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot be read as {suffix[1:]}: {exc}") from None
    refuse_duplicate_columns(path, table.column_names)
    if table.num_rows == 0:
        raise empty_table_error(path)
    return table


def refuse_duplicate_columns(path: Path, names: Sequence[str]) -> None:
    """Refuse a table whose header names a column twice (which of the two is meant?).

    Raises:
        InputError: naming the file and the column.
    """
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(
                f"{path}: column '{name}' appears {list(names).count(name)} times in the "
                f"header; every column name must be unique. Rename or drop the copies."
            )
        seen.add(name)


def arrow_from_pandas(label: str | Path, frame: pd.DataFrame) -> pa.Table:
    """An in-memory table (``mlflow.models.evaluate`` data, a model's output) as Arrow.

    Args:
        label: how messages name the table (it has no file).
        frame: the table; cells of an ``embedding`` column are sequences of numbers.

    Raises:
        InputError: a column Arrow cannot represent, or no data rows.
    """
    frame = frame.reset_index(drop=True)
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise InputError(f"{label}: cannot be read as a table: {exc}") from None
    if table.num_rows == 0:
        raise empty_table_error(label)
    return table


def _csv_header(path: Path) -> list[str]:
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        first = handle.readline()
    if not first.strip():
        raise InputError(f"{path}: the file is empty (no header, no data rows).")
    return [c.strip().strip('"') for c in first.rstrip("\r\n").split(",")]


def _read_jsonl(path: Path) -> pa.Table:
    with contextlib.suppress(pa.ArrowInvalid):
        return pa_json.read_json(path)
    # Arrow refuses a column whose JSON type changes between rows (7 and "007"); read the
    # lines one by one so such files still load and a broken line is reported by number.
    records = []
    with path.open("r", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}: line {number} is not valid JSON: {exc}.") from None
            if not isinstance(record, dict):
                raise InputError(f"{path}: line {number} is not a JSON object.")
            if "video_id" in record and record["video_id"] is not None:
                record["video_id"] = _json_id(record["video_id"])
            records.append(record)
    if not records:
        return pa.table({})
    columns: dict[str, list] = {name: [] for rec in records for name in rec}
    for rec in records:
        for name, values in columns.items():
            values.append(rec.get(name))
    return pa.table({name: _arrow_column(values) for name, values in columns.items()})


def _arrow_column(values: list) -> pa.Array:
    # A column mixing types (1.5 and "noon") becomes text, so the column checks can name the
    # offending rows instead of the reader failing on the whole file.
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        # OverflowError: an integer beyond int64 (the column checks then see its text).
        return pa.array(
            [None if v is None else v if isinstance(v, str) else json.dumps(v) for v in values],
            pa.string(),
        )


def _json_id(value: object) -> object:
    # Integers become their decimal text; anything else is checked later as a wrong type.
    if isinstance(value, bool):
        return value
    return str(value) if isinstance(value, int) else value


def require_columns(path: Path, table: pa.Table, columns: Sequence[str], role: str) -> None:
    """Raise an InputError naming every required column that is missing."""
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise missing_columns_error(path, missing, table.column_names, role)


def video_ids(path: Path, table: pa.Table, frame: pd.DataFrame | None = None) -> np.ndarray:
    """The `video_id` column as an object array of str (integers become their decimal text).

    ``frame`` (optional) numbers the offending rows like `describe_rows`.

    Raises:
        InputError: missing values, or a type other than text or integer.
    """
    col = table["video_id"]
    check_video_id_type(path, col.type)
    if pa.types.is_integer(col.type) or pa.types.is_dictionary(col.type):
        col = col.cast(pa.string())
    null = col.is_null().to_numpy(zero_copy_only=False)
    if null.any():
        numbering = None if frame is None else pd.DataFrame(index=frame.index)
        raise column_error(path, "video_id", MISSING_VIDEO_ID, np.flatnonzero(null), numbering)
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=object)


def check_video_id_type(path: Path, kind: pa.DataType) -> None:
    """Video ids are text or integers; a float (0.5) or any other type is refused.

    Raises:
        InputError: naming the file, the column and the type.
    """
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if not (
        pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)
    ):
        raise video_id_type_error(path, kind)


def numeric_column(
    path: Path, table: pa.Table, column: str, frame: pd.DataFrame, what: str
) -> np.ndarray:
    """A numeric column as float64 (missing values as NaN), refusing values that are not numbers.

    The caller's range check reports missing values together with NaN and inf.

    Raises:
        InputError: a value that is not a number.
    """
    col = table[column]
    if pa.types.is_integer(col.type):
        ints = col.fill_null(0).to_numpy(zero_copy_only=False)
        _refuse_inexact_integers(path, column, ints, frame)
        return col.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
    if pa.types.is_floating(col.type):
        return col.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
    if (
        pa.types.is_string(col.type)
        or pa.types.is_large_string(col.type)
        or pa.types.is_null(col.type)
    ):
        raw = pd.Series(col.to_numpy(zero_copy_only=False), dtype=object)
        parsed = pd.to_numeric(raw, errors="coerce")
        if parsed.dtype.kind in "iu":
            _refuse_inexact_integers(path, column, parsed.to_numpy(), frame)
        values = parsed.to_numpy(dtype=np.float64)
        text = raw.astype(str).str.strip().str.lower()
        bad = np.isnan(values) & ~(raw.isna() | text.isin(["nan", ""])).to_numpy()
        check_rows(bad, path, column, wrong_text(what), frame)
        return values
    raise wrong_type_error(path, column, what, col.type)


def _refuse_inexact_integers(
    path: Path, column: str, ints: np.ndarray, frame: pd.DataFrame
) -> None:
    if ints.dtype.kind == "u":
        bad = ints > np.uint64(MAX_EXACT_INTEGER)
    else:
        # Compared as integers: float64(2**53 + 1) would round to 2**53 and pass.
        bad = (ints > MAX_EXACT_INTEGER) | (ints < -MAX_EXACT_INTEGER)
    check_rows(bad, path, column, inexact_problem(), frame)


def inexact_problem() -> str:
    """The problem text for an integer that float64 cannot hold exactly."""
    return (
        f"integer outside the exactly representable range [-2**53, 2**53] "
        f"(|value| <= {MAX_EXACT_INTEGER}; larger integers lose digits in float64)"
    )


def refuse_huge_whole_numbers(
    path: Path, column: str, values: np.ndarray, frame: pd.DataFrame
) -> None:
    """Refuse whole numbers (ranks, episode numbers) read as floats beyond 2**53.

    Such a value (a CSV integer too long for int64 is read as a float) cannot be turned into an
    exact integer.

    Raises:
        InputError: naming the file, the column and the rows.
    """
    bad = np.abs(values) > MAX_EXACT_INTEGER
    check_rows(bad, path, column, inexact_problem(), frame)


@dataclass(frozen=True)
class Embeddings:
    """Embedding vectors of one table: (n, D) float32."""

    values: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])


def embedding_column(
    path: Path, table: pa.Table, frame: pd.DataFrame, *, checked: bool = False
) -> Embeddings:
    """Parse the `embedding` column: a list of numbers per row (in CSV, a JSON array as text).

    ``checked``: the rows passed these checks already (they are only converted).

    Raises:
        InputError: a missing vector, a value that is not a number, NaN/inf, an empty vector,
            or vectors of different lengths within the file.
    """
    col = table["embedding"]
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        col = _parse_text_vectors(path, col, frame)
    if not (
        pa.types.is_list(col.type)
        or pa.types.is_large_list(col.type)
        or pa.types.is_fixed_size_list(col.type)
    ):
        raise wrong_type_error(path, "embedding", "a list of numbers per row", col.type)
    arr = col
    if isinstance(col, pa.ChunkedArray):
        # One chunk as it is: ChunkedArray.combine_chunks copies even a single chunk.
        chunks = col.chunks
        arr = chunks[0] if len(chunks) == 1 else pa.concat_arrays(chunks) if chunks else None
        arr = pa.array([], col.type) if arr is None else arr
    if len(arr) == 0:
        # A work unit's table may hold no rows (its videos are all in the other table).
        width = arr.type.list_size if pa.types.is_fixed_size_list(arr.type) else 0
        return Embeddings(np.zeros((0, width), dtype=np.float32))
    dim = _vector_length(path, arr, frame, checked)
    flat = arr.flatten()
    if not (pa.types.is_integer(flat.type) or pa.types.is_floating(flat.type)):
        raise wrong_type_error(path, "embedding", "numbers inside the vectors", flat.type)
    n = len(arr)
    bad = np.zeros(n, dtype=bool)
    if flat.null_count and not checked:
        bad |= flat.is_null().to_numpy(zero_copy_only=False).reshape(n, dim).any(axis=1)
        flat = flat.fill_null(0)
    # One conversion to float32 (zero-copy when the file already stores float32); values too
    # large for float32 become inf and are refused with the NaN/inf check.
    if flat.type != pa.float32():
        with np.errstate(over="ignore"):
            values = np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float32)
    else:
        values = flat.to_numpy(zero_copy_only=False)
    values = values.reshape(n, dim)
    if checked:
        return Embeddings(values)
    bad |= ~np.isfinite(values).all(axis=1)
    if not bad.any():
        return Embeddings(values)
    raise column_error(path, "embedding", EMBEDDING_NOT_FINITE, np.flatnonzero(bad), frame)


def _vector_length(path: Path, arr: pa.Array, frame: pd.DataFrame, checked: bool) -> int:
    """The one vector length D of the rows; missing, empty and other lengths are refused."""
    if checked:
        return len(arr.flatten()) // len(arr)  # every row has the one length
    null = arr.is_null().to_numpy(zero_copy_only=False)
    check_rows(null, path, "embedding", EMBEDDING_MISSING, frame)
    lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False).astype(np.int64)
    empty = lengths == 0
    check_rows(empty, path, "embedding", EMBEDDING_EMPTY, frame)
    dim = int(np.bincount(lengths).argmax())
    odd = lengths != dim
    check_rows(
        odd, path, "embedding", different_lengths(dim, sorted(set(lengths[odd].tolist()))), frame
    )
    return dim


def _parse_text_vectors(path: Path, col: pa.ChunkedArray, frame: pd.DataFrame) -> pa.Array:
    text = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    stripped = pc.utf8_trim_whitespace(text)
    shaped = pc.and_(pc.starts_with(stripped, "["), pc.ends_with(stripped, "]"))
    bad = ~shaped.fill_null(True).to_numpy(zero_copy_only=False)
    bad &= ~text.is_null().to_numpy(zero_copy_only=False)
    check_rows(bad, path, "embedding", EMBEDDING_NOT_ARRAY, frame)
    inner = pc.utf8_slice_codeunits(stripped, 1, -1)
    parts = pc.split_pattern(inner, ",")
    items = pc.utf8_trim_whitespace(parts.flatten())
    # "[]" splits into one empty item; keep such rows empty so the length check reports them.
    offsets = parts.offsets.to_numpy()
    try:
        numbers = items.cast(pa.float64())
    except pa.ArrowInvalid:
        numbers = None
    if numbers is None or (pc.sum(pc.equal(items, "")).as_py() or 0):
        rows = []
        for i, cell in enumerate(text.to_pylist()):
            if cell is None:
                continue
            try:
                vec = json.loads(cell)
                ok = isinstance(vec, list) and all(
                    isinstance(x, int | float) and not isinstance(x, bool) for x in vec
                )
            except json.JSONDecodeError:
                ok = False
            if not ok or (isinstance(vec, list) and len(vec) == 0):
                rows.append(i)
        if not rows:
            raise InputError(f"{path}: column 'embedding': some vector items are not numbers.")
        raise column_error(
            path,
            "embedding",
            "expected a non-empty JSON array of numbers such as [0.1, 0.2]",
            np.array(rows, dtype=np.int64),
            frame,
        )
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), numbers, mask=text.is_null())
