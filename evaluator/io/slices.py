"""Reading the slice metadata (``data.slices``): ``video_id`` plus the columns to slice by.

One row per video: ``video_id`` (text, unique) and any categorical columns (genre, series,
language: any text, Korean, ``&``, ``/`` and spaces included) or numeric ones (duration),
which need bin edges (``slices.bins``) or must be declared categorical
(``slices.categorical``). A ``.parquet``, ``.csv`` or ``.jsonl`` file, or a folder of part files
of those kinds (read in name order, as one table). Null and empty cells mean "no value": such
videos fall in the slice ``(missing)``. Errors name the file, the column and up to five rows
(in a folder, ``part`` says which file and line a row came from).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from evaluator.core.slices import bin_codes
from evaluator.errors import InputError
from evaluator.io.tables import (
    SUPPORTED_SUFFIXES,
    check_rows,
    numeric_column,
    read_table,
    require_columns,
    video_ids,
)


@dataclass(frozen=True, eq=False)
class SliceColumn:
    """One slice column of the metadata.

    Attributes:
        name: the column.
        values: its values in display order (sorted text; bins in edge order).
        codes: per metadata row, the index into ``values`` (-1 = no value).
        segments: the metric-key segment per value for bins (``0-600``), else None.
        bins: the bin edges, or None for a categorical column.
    """

    name: str
    values: tuple[str, ...]
    codes: np.ndarray
    segments: tuple[str, ...] | None
    bins: tuple[float, ...] | None


@dataclass(frozen=True, eq=False)
class SliceTable:
    """The validated slice metadata.

    Attributes:
        path: the file or folder.
        video_id: one id per row (text, unique), shape (r,).
        columns: the slice columns, in the configured (or file) order.
    """

    path: Path
    video_id: np.ndarray
    columns: tuple[SliceColumn, ...]

    @property
    def n_rows(self) -> int:
        return int(self.video_id.shape[0])


def _part_files(path: Path) -> list[Path]:
    parts = sorted(
        p
        for p in path.iterdir()
        if p.is_file()
        and p.suffix.lower() in SUPPORTED_SUFFIXES
        and not p.name.startswith((".", "_"))
    )
    if not parts:
        raise InputError(
            f"{path}: the folder holds no part files ({', '.join(SUPPORTED_SUFFIXES)}); "
            f"data.slices takes a file or a folder of part files."
        )
    return parts


def read_slice_table(path: Path, text_columns: Sequence[str]) -> tuple[pa.Table, np.ndarray | None]:
    """The file, or every part file of the folder as one table.

    Returns:
        The table and, for a folder, the ``part`` label (``name:row``) of every row.

    Raises:
        InputError: a missing or unreadable file, parts whose columns cannot be combined.
    """
    columns = ("video_id", *text_columns)
    if not path.is_dir():
        return read_table(path, string_columns=columns), None
    tables, labels = [], []
    for part in _part_files(path):
        t = read_table(part, string_columns=columns)
        tables.append(t)
        labels.append(np.char.add(f"{part.name}:", np.arange(1, t.num_rows + 1).astype(str)))
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InputError(
            f"{path}: the part files cannot be read as one table (a column has different "
            f"types in different parts): {exc}"
        ) from None
    return table, np.concatenate(labels).astype(object)


def _is_number(col: pa.ChunkedArray) -> bool:
    return pa.types.is_integer(col.type) or pa.types.is_floating(col.type)


def _is_text(col: pa.ChunkedArray) -> bool:
    t = col.type
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t)


def _categorical(path: Path, col: pa.ChunkedArray, name: str) -> SliceColumn:
    if pa.types.is_dictionary(col.type):
        col = col.cast(pa.string())
    elif pa.types.is_boolean(col.type) or _is_number(col) or pa.types.is_null(col.type):
        col = col.cast(pa.string())
    elif not _is_text(col):
        raise InputError(
            f"{path}: column '{name}': wrong type {col.type} for a slice column; expected text "
            f"(a category) or numbers (with bins)."
        )
    text = pd.Series(col.to_numpy(zero_copy_only=False), dtype=object)
    missing = text.isna().to_numpy() | (text.fillna("").astype(str).str.strip() == "").to_numpy()
    present = text[~missing].astype(str).to_numpy(dtype=object)
    values, inverse = np.unique(present.astype(str), return_inverse=True)
    codes = np.full(text.shape[0], -1, dtype=np.int64)
    codes[~missing] = inverse.reshape(-1)
    return SliceColumn(name, tuple(str(v) for v in values), codes, None, None)


def _binned(
    path: Path, table: pa.Table, name: str, edges: Sequence[float], frame: pd.DataFrame
) -> SliceColumn:
    values = numeric_column(path, table, name, frame, "a number (the column has bins)")
    try:
        codes, labels, segments, outside = bin_codes(values, edges)
    except ValueError as exc:
        raise InputError(f"config: slices.bins.{name}: {exc}.") from None
    check_rows(
        outside,
        path,
        name,
        f"value outside the bins {list(edges)} (widen them, e.g. with -inf / inf as the "
        f"outer edges)",
        frame,
    )
    return SliceColumn(name, labels, codes, segments, tuple(float(e) for e in edges))


def load_slice_table(
    path: str | Path,
    *,
    columns: Sequence[str] | None = None,
    bins: Mapping[str, Sequence[float]] | None = None,
    categorical: Sequence[str] = (),
) -> SliceTable:
    """Read and validate the slice metadata.

    Args:
        path: a .parquet / .csv / .jsonl file, or a folder of such part files.
        columns: the slice columns; None = every column but ``video_id``.
        bins: numeric column -> bin edges.
        categorical: numeric columns to slice by value.

    Returns:
        The validated :class:`SliceTable`.

    Raises:
        InputError: no ``video_id`` column, a missing or duplicate video id (naming the
            rows), a configured column the file lacks, a numeric column without bins, a
            value that is not a number in a binned column or outside its bins.
    """
    path = Path(path)
    bins = dict(bins or {})
    table, parts = read_slice_table(path, (*categorical, *(columns or ())))
    require_columns(path, table, ["video_id"], "slices")
    names = [c for c in table.column_names if c != "video_id"] if columns is None else list(columns)
    wanted = {"slices.columns": names, "slices.bins": list(bins), "slices.categorical": categorical}
    for key, listed in wanted.items():
        unknown = [c for c in listed if c not in table.column_names or c == "video_id"]
        if unknown:
            raise InputError(
                f"{path}: {key} names {unknown}, which the slices table does not have as a "
                f"slice column; its columns are {table.column_names}."
            )
    both = sorted(set(bins) & set(categorical))
    if both:
        raise InputError(
            f"config: {both} are in both slices.bins and slices.categorical; a numeric column is "
            f"either binned or sliced by value."
        )
    if not names:
        raise InputError(
            f"{path}: the slices table has no column besides video_id; add metadata columns "
            f"(genre, series, duration_s, ...) to slice by."
        )
    ids = video_ids(path, table)
    frame = pd.DataFrame({"video_id": ids})
    if parts is not None:
        frame["part"] = parts
    context = ("video_id", "part")
    dup = pd.Series(ids).duplicated(keep=False).to_numpy()
    check_rows(
        dup,
        path,
        "video_id",
        "duplicate video id (the slices table needs one row per video)",
        frame,
        context,
    )
    out = []
    for name in names:
        col = table[name]
        if name in bins:
            frame[name] = col.to_pandas()
            out.append(_binned(path, table, name, bins[name], frame))
        elif _is_number(col) and name not in categorical:
            raise InputError(
                f"{path}: column '{name}' is numeric ({col.type}): give its bins, e.g. "
                f"slices.bins={{{name}: [0, 600, 1800, inf]}}, or make it categorical with "
                f"slices.categorical=[{name}] (one slice per distinct value)."
            )
        else:
            out.append(_categorical(path, col, name))
    return SliceTable(path, ids, tuple(out))


__all__ = ["SliceColumn", "SliceTable", "load_slice_table", "read_slice_table"]
