"""Where a table comes from: one file, a directory of part files, or a glob.

Spark and pandas jobs write a table as a directory of part files (``part-00000-....parquet``,
next to ``_SUCCESS`` and hidden ``.crc`` files). `resolve_source` turns ``data.experts`` /
``data.predictions`` into the ordered list of files to read, and `check_parts` makes sure every
part has the same columns with compatible types before anything is scored.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from evaluator.errors import InputError
from evaluator.io.rules import empty_table_error
from evaluator.io.tables import SUPPORTED_SUFFIXES, refuse_duplicate_columns

_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Source:
    """The files of one input table.

    Attributes:
        label: what the user gave (file, directory or glob), for messages.
        files: the data files, in reading order (sorted by path).
        suffix: their format (``.parquet``, ``.csv`` or ``.jsonl``).
    """

    label: Path
    files: tuple[Path, ...]
    suffix: str

    @property
    def is_single_file(self) -> bool:
        """True when the table is one file named directly (not a directory or a glob)."""
        return len(self.files) == 1 and self.files[0] == self.label

    @property
    def n_bytes(self) -> int:
        """Total size of the files on disk."""
        return sum(f.stat().st_size for f in self.files)


def _ignored(path: Path, root: Path | None) -> bool:
    """Spark / Hadoop bookkeeping: names starting with '_' or '.' (at any depth below root)."""
    parts = path.relative_to(root).parts if root is not None else (path.name,)
    return any(p.startswith(("_", ".")) for p in parts)


def resolve_source(spec: str | Path, role: str) -> Source:
    """The files behind ``data.experts`` / ``data.predictions``.

    Args:
        spec: a file (.parquet, .csv, .jsonl), a directory (every ``*.parquet`` below it,
            recursively; names starting with ``_`` or ``.`` are skipped, so ``_SUCCESS``,
            ``_temporary/`` and ``.crc`` files are ignored), or a glob (``parts/*.parquet``,
            ``**`` allowed).
        role: "experts" or "predictions" (for messages).

    Returns:
        The source, files sorted by path.

    Raises:
        InputError: nothing matches, a directory without parquet files, or files of
            different or unsupported formats.
    """
    label = Path(str(spec))
    text = str(spec)
    if label.is_dir():
        files = sorted(p for p in label.rglob("*") if not p.is_dir() and not _ignored(p, label))
        data = [p for p in files if p.suffix.lower() == ".parquet" and p.is_file()]
        if not data:
            found = ", ".join(p.name for p in files[:5]) or "nothing"
            raise InputError(
                f"{label}: the {role} directory holds no .parquet part files (found {found}); "
                f"give a file, a directory of part-*.parquet files or a glob."
            )
        refuse_foreign_parts(label, role, [p for p in files if p not in set(data)])
        return Source(label, tuple(data), ".parquet")
    if _GLOB_CHARS & set(text) and not label.exists():
        matches = sorted(Path(p) for p in glob.glob(text, recursive=True))
        files = []
        for p in matches:
            if p.is_dir():
                files.extend(q for q in sorted(p.rglob("*.parquet")) if not _ignored(q, p))
            elif p.is_file() and not _ignored(p, None):
                files.append(p)
        if not files:
            raise InputError(f"{label}: no {role} file matches this pattern.")
        suffixes = {p.suffix.lower() for p in files}
        if len(suffixes) > 1 or not suffixes <= set(SUPPORTED_SUFFIXES):
            raise InputError(
                f"{label}: the pattern matches files of different or unsupported types "
                f"({', '.join(sorted(suffixes))}); give files of one format."
            )
        suffix = suffixes.pop()
        if suffix != ".parquet" and len(files) > 1:
            raise InputError(
                f"{label}: {len(files)} {suffix} files match; several part files must be "
                f".parquet (or give one file)."
            )
        return Source(label, tuple(sorted(set(files))), suffix)
    return Source(label, (label,), label.suffix.lower())


def refuse_foreign_parts(label: Path, role: str, foreign: Sequence[Path]) -> None:
    """A part folder may hold only parquet parts (and Spark's ``_`` / ``.`` bookkeeping).

    Anything else (a ``.csv`` beside the parts, a FIFO, a link that leads nowhere) would be
    skipped silently, and with it part of the table.

    Raises:
        InputError: naming the files that are not parquet parts.
    """
    if not foreign:
        return
    shown = ", ".join(str(p.relative_to(label)) for p in foreign[:5])
    more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
    raise InputError(
        f"{label}: the {role} directory holds files that are not parquet part files "
        f"({shown}{more}); reading it would skip them and with them part of the table. Move "
        f"them out, or name the parts with a glob ({label}/*.parquet)."
    )


def _kind(t: pa.DataType) -> str:
    """The type class that matters for reading (widths and list flavours may differ by part)."""
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        return "text"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t):
        return "number"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        v = t.value_type
        return "list of numbers" if pa.types.is_integer(v) or pa.types.is_floating(v) else str(t)
    if pa.types.is_null(t):
        return "null"
    return str(t)


def part_schemas(source: Source) -> list[pa.Schema]:
    """The Arrow schema of every parquet part (footers only).

    Raises:
        InputError: a part that is not a readable parquet file.
    """
    out = []
    for f in source.files:
        try:
            out.append(pq.read_schema(f))
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{f}: cannot be read as parquet: {exc}") from None
        refuse_duplicate_columns(f, out[-1].names)
    return out


def check_parts(source: Source, schemas: Sequence[pa.Schema]) -> pa.Schema:
    """Every part has the first part's columns, each of a compatible type.

    Compatible: text (string, large_string, dictionary), integers of any width, floats of any
    width, lists / fixed-size lists of numbers; an all-null column matches anything.

    Returns:
        The first part's schema.

    Raises:
        InputError: naming the part file and the column that differs.
    """
    first = schemas[0]
    names = set(first.names)
    for path, schema in zip(source.files[1:], schemas[1:], strict=True):
        missing = [c for c in first.names if c not in schema.names]
        extra = [c for c in schema.names if c not in names]
        if missing or extra:
            what = f"column '{missing[0]}' is missing" if missing else f"column '{extra[0]}' is new"
            raise InputError(
                f"{path}: {what}: every part file of {source.label} needs the columns of "
                f"{source.files[0].name} ({', '.join(first.names)})."
            )
        for name in first.names:
            a, b = _kind(first.field(name).type), _kind(schema.field(name).type)
            if a != b and "null" not in (a, b):
                raise InputError(
                    f"{path}: column '{name}': type {schema.field(name).type} differs from "
                    f"{first.field(name).type} in {source.files[0].name}; every part file of "
                    f"{source.label} needs the same column types."
                )
    return first


def read_parts(source: Source) -> pa.Table:
    """Every part file of a parquet source as one table (after `check_parts`).

    Raises:
        InputError: parts that differ or cannot be read, or no rows at all.
    """
    check_parts(source, part_schemas(source))
    try:
        table = pa.concat_tables(
            [pq.read_table(f) for f in source.files], promote_options="permissive"
        )
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{source.label}: the part files cannot be read together: {exc}") from None
    if table.num_rows == 0:
        raise empty_table_error(source.label)
    return table
