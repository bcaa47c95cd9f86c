"""Reading part files in batches and partitioning their rows by video into work units.

A table (`evaluator.io.sources.Source`) is read file by file, in batches of at most
``batch_rows`` rows, only the columns the evaluation needs. Each batch is validated on its
own (messages name the part file and the row in it). Rows are then either collected in memory
(when both tables fit the memory budget) or written to hash buckets: temporary Arrow IPC files,
one per (bucket, table), each holding every row of the videos whose id hashes to it, in input
order. A bucket that turns out larger than a unit may be is split again with another hash.

Two int64 columns are added to every row: ``__order`` (position in "all expert rows, then all
prediction rows"; the canonical video order) and ``__row`` (position in its own table over all
part files; the gallery's row id and the way back to a file and row for messages).
"""

from __future__ import annotations

import contextlib
import errno
import math
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from evaluator.errors import InputError
from evaluator.io.poster import load_table
from evaluator.io.rules import IMAGE_COLUMNS, MAX_ROWS_SHOWN, and_more, empty_table_error
from evaluator.io.sources import Source, check_parts, part_schemas
from evaluator.io.tables import check_video_id_type, require_columns
from evaluator.lifecycle import checkpoint

ORDER_COLUMN = "__order"
ROW_COLUMN = "__row"
# Per-row memory beyond the Arrow data while a unit is scored: ids as Python strings, float64
# timestamps, ranks, sort orders and group offsets of the core, the pandas scalar frame, the
# pair blocks. Measured as the rise of peak RSS over `evaluator.engines.units.score_unit` on
# units of 0.1M-1M rows (64-d and 512-d vectors): 700-1100 bytes per row.
SCALAR_ROW_BYTES = 1024
BATCH_ROWS = 65_536
# Bytes of Arrow data per read batch: parquet pages are decoded a batch at a time, so this
# bounds the decoding buffers whatever the files' row groups are. Twice malloc's fixed mmap
# threshold (`evaluator.engines.memory`): a batch's vectors are then a mapping of their own,
# not heap blocks between the decoder's freed scratch (at 8 MB, 640 MB of 512-d vectors
# held 130 MB more resident memory after the read).
READ_BATCH_BYTES = 16 << 20
# The parquet reader streams column chunks through a buffer of this size instead of loading a
# whole row group (a 200k x 512-d row group is 400 MB).
READ_BUFFER_BYTES = 4 << 20
# Two open files per bucket while partitioning (one per table).
MAX_BUCKETS = 384
# Rows are handed to the buckets in slabs of about this much data, so each bucket gets few,
# large record batches (a unit is read back as a handful of chunks, not thousands).
PARTITION_SLAB_BYTES = 64 << 20
# Units are sized for speed, not to fill the budget: the core's per-row cost is flat from about
# 0.1M rows per unit, so larger units only cost memory. A unit's working set is at most this
# (or the budget, when smaller).
UNIT_TARGET_BYTES = 160 << 20


@dataclass(frozen=True)
class TablePlan:
    """How one table is read.

    Attributes:
        source: its files.
        role: "experts" or "predictions".
        columns: the columns read (experts: all, so exact duplicates are judged on every
            column; predictions: those the evaluation uses).
        schema: the first part's schema.
        file_rows: rows per file (from the parquet footers).
        row_bytes: estimated memory per row while its unit is scored.
        data_row_bytes: the Arrow data of a row as read (its part of ``row_bytes``).
    """

    source: Source
    role: str
    columns: tuple[str, ...]
    schema: pa.Schema
    file_rows: tuple[int, ...]
    row_bytes: int
    data_row_bytes: int = 0

    @property
    def n_rows(self) -> int:
        return int(sum(self.file_rows))

    @property
    def file_starts(self) -> np.ndarray:
        """First global row of each file."""
        return np.cumsum([0, *self.file_rows[:-1]]).astype(np.int64)

    def locate(self, rows: np.ndarray) -> list[tuple[Path, int]]:
        """(file, 0-based row in that file) of global rows."""
        starts = self.file_starts
        index = np.searchsorted(starts, rows, side="right") - 1
        return [
            (self.source.files[i], int(r - starts[i])) for i, r in zip(index, rows, strict=True)
        ]


def plan_table(source: Source, role: str, *, need_embeddings: bool, want_image: bool) -> TablePlan:
    """Check the parts' schemas and decide the columns and the per-row memory estimate.

    Raises:
        InputError: parts whose columns differ (naming the file and column), a required
            column missing, or a table without rows.
    """
    schemas = part_schemas(source)
    schema = check_parts(source, schemas)
    first = source.files[0]
    require_columns(
        first,
        pa.table({n: pa.array([], pa.null()) for n in schema.names}),
        ["video_id", "timestamp"],
        role,
    )
    check_video_id_type(first, schema.field("video_id").type)
    if role == "experts":
        columns = tuple(schema.names)
    else:
        wanted = ["video_id", "timestamp", "rank" if "rank" in schema.names else "score"]
        if need_embeddings:
            wanted.append("embedding")
        if want_image:
            wanted.extend(c for c in IMAGE_COLUMNS if c in schema.names)
        columns = tuple(c for c in schema.names if c in wanted)
    rows, data_bytes, emb_bytes = [], 0, 0
    for f in source.files:
        meta = pq.ParquetFile(f).metadata
        rows.append(int(meta.num_rows))
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                chunk = group.column(c)
                name = chunk.path_in_schema.split(".")[0]
                if name in columns:
                    data_bytes += int(chunk.total_uncompressed_size)
                    if name == "embedding":
                        emb_bytes += int(chunk.total_uncompressed_size)
    if sum(rows) == 0:
        raise empty_table_error(source.label)
    n = sum(rows)
    # A float32 copy of the vectors unless they are stored as float32 (then read zero-copy).
    copy = 0
    if need_embeddings and "embedding" in columns:
        value_type = getattr(schema.field("embedding").type, "value_type", None)
        if value_type is not None and value_type != pa.float32():
            item = max(1, getattr(value_type, "bit_width", 32) // 8)
            copy = 4 * (emb_bytes // n) // item
    data = data_bytes // n + copy
    return TablePlan(
        source, role, columns, schema, tuple(rows), data + SCALAR_ROW_BYTES, data_bytes // n
    )


def rows_per_unit(budget_bytes: int, *plans: TablePlan) -> int:
    """The most rows (both tables together) one work unit may hold within the budget."""
    row_bytes = max(p.row_bytes for p in plans)
    return max(1, int(budget_bytes // row_bytes))


def read_batch_rows(plan: TablePlan, batch_rows: int = BATCH_ROWS) -> int:
    """Rows per read batch: at most ``batch_rows`` and about `READ_BATCH_BYTES` of data."""
    return max(1, min(batch_rows, READ_BATCH_BYTES // max(1, plan.data_row_bytes)))


def _canonical(t: pa.DataType) -> pa.DataType:
    """The type a column is written to buckets with (parts may differ in widths and flavours)."""
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        return pa.large_string()
    if pa.types.is_integer(t):
        return pa.int64()
    if pa.types.is_floating(t):
        return pa.float64()
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        if pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type):
            # Vectors are scored as float32; validation refused values float32 cannot hold.
            return pa.list_(pa.float32())
    return t


def _canonical_video_id(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    return arr.cast(pa.large_string())


def iter_batches(
    plan: TablePlan, batch_rows: int = BATCH_ROWS
) -> Iterator[tuple[Path, int, int, pa.Table]]:
    """(file, first row in the file, first global row, batch) over all parts, in order."""
    row = 0
    for f in plan.source.files:
        in_file = 0
        try:
            reader = pq.ParquetFile(f, pre_buffer=False, buffer_size=READ_BUFFER_BYTES)
            batches = reader.iter_batches(
                batch_size=read_batch_rows(plan, batch_rows), columns=list(plan.columns)
            )
            for batch in batches:
                checkpoint()  # Ctrl-C / SIGTERM stop here, between two batch reads
                yield f, in_file, row, pa.Table.from_batches([batch])
                in_file += batch.num_rows
                row += batch.num_rows
        except (pa.ArrowException, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                raise
            raise InputError(f"{f}: cannot be read as parquet: {exc}") from None


def validate_batch(
    plan: TablePlan, path: Path, first_row: int, table: pa.Table, need_embeddings: bool
) -> int | None:
    """The row-level checks (docs/inputs.md#what-is-refused) of one batch; returns its vector
    length.

    Raises:
        InputError: naming the part file, the column and the rows (numbered in the file).
    """
    loaded = load_table(
        path, role=plan.role, need_embeddings=need_embeddings, frame=table, first_row=first_row
    )
    if loaded.embedding is None or not len(loaded.embedding):
        return None
    return int(loaded.embedding.shape[1])


def with_row_columns(
    plan: TablePlan, table: pa.Table, first_row: int, order_offset: int, schema: pa.Schema | None
) -> pa.Table:
    """The batch in the bucket schema, with ``__order`` and ``__row`` appended."""
    n = table.num_rows
    rows = np.arange(first_row, first_row + n, dtype=np.int64)
    columns, names = [], []
    for name in table.column_names:
        col = table[name]
        target = (
            pa.large_string() if name == "video_id" else _canonical(plan.schema.field(name).type)
        )
        if name == "video_id":
            col = _canonical_video_id(col)
        elif col.type != target:
            col = col.cast(target)
        columns.append(col)
        names.append(name)
    columns += [pa.array(rows + order_offset), pa.array(rows)]
    names += [ORDER_COLUMN, ROW_COLUMN]
    out = pa.Table.from_arrays(columns, names=names)
    return out if schema is None else out.cast(schema)


def bucket_of(video_id: pa.ChunkedArray | pa.Array, n_buckets: int, salt: int) -> np.ndarray:
    """Bucket of each row: a hash of its video id (text), modulo ``n_buckets``."""
    arr = video_id.combine_chunks() if isinstance(video_id, pa.ChunkedArray) else video_id
    encoded = pc.dictionary_encode(arr)
    values = np.asarray(encoded.dictionary.to_numpy(zero_copy_only=False), dtype=object)
    hashed = pd.util.hash_array(values, hash_key=f"video-eval{salt:06d}"[:16])
    per_value = (hashed % np.uint64(n_buckets)).astype(np.int64)
    return per_value[encoded.indices.to_numpy(zero_copy_only=False)]


def bucket_order(
    video_id: pa.ChunkedArray | pa.Array, n_buckets: int, salt: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows sorted by bucket, each bucket's rows in input order, and the bucket bounds.

    Returns:
        (order, bounds): bucket b holds rows ``order[bounds[b] : bounds[b + 1]]``.
    """
    buckets = bucket_of(video_id, n_buckets, salt) if len(video_id) else np.zeros(0, dtype=np.int64)
    order = np.argsort(buckets, kind="stable")
    return order, np.searchsorted(buckets[order], np.arange(n_buckets + 1))


def duplicate_rank_error(plan: TablePlan, table: pa.Table) -> InputError | None:
    """A duplicate (video, rank) among a unit's prediction rows, named by file and row.

    Rows of one video may come from several part files (or batches), so this check runs on
    whole units; the rows are named in their files.
    """
    if "rank" not in table.column_names:
        return None
    ids = table["video_id"].to_numpy(zero_copy_only=False)
    ranks = table["rank"].to_numpy(zero_copy_only=False)
    dup = pd.DataFrame({"v": ids, "r": ranks}).duplicated(keep=False).to_numpy()
    if not dup.any():
        return None
    rows = table[ROW_COLUMN].to_numpy()[dup]
    order = np.argsort(rows, kind="stable")
    where = plan.locate(rows[order])
    single = len(plan.source.files) == 1
    shown = [
        f"row {r + 1}{'' if single else f' of {f.name}'} (rank={_value(rank)}, "
        f"video_id={str(vid)!r})"
        for (f, r), rank, vid in zip(
            where[:MAX_ROWS_SHOWN], ranks[dup][order], ids[dup][order], strict=False
        )
    ]
    label = plan.source.files[0] if single else plan.source.label
    return InputError(
        f"{label}: column 'rank': duplicate rank within a video in {len(where)} rows: "
        f"{', '.join(shown)}{and_more(len(where))}."
    )


def _value(v: object) -> str:
    return repr(v.item() if isinstance(v, np.generic) else v)


class TempBuckets:
    """Hash buckets on local disk: one Arrow IPC file per (bucket, table).

    Used as a context manager: the folder is removed on exit, also on errors, Ctrl-C and
    SIGTERM (the task turns SIGTERM into an exception).
    """

    def __init__(self, temp_dir: str | Path | None, n_buckets: int, salt: int = 0) -> None:
        self.n = n_buckets
        self.salt = salt
        self.root = Path(
            tempfile.mkdtemp(prefix="video-eval-", dir=None if temp_dir is None else str(temp_dir))
        )
        self.writers: dict[tuple[int, str], pa.ipc.RecordBatchFileWriter] = {}
        self.rows = np.zeros((n_buckets, 2), dtype=np.int64)
        self.schemas: dict[str, pa.Schema] = {}

    def __enter__(self) -> TempBuckets:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        for w in self.writers.values():
            with contextlib.suppress(pa.ArrowException, OSError):
                w.close()
        self.writers.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    def path(self, bucket: int, role: str) -> Path:
        return self.root / f"{role}-{bucket:04d}.arrow"

    def add(self, role: str, table: pa.Table) -> None:
        """Append the rows of ``table`` (bucket schema) to their buckets, keeping their order."""
        side = 0 if role == "experts" else 1
        self.schemas.setdefault(role, table.schema)
        order, bounds = bucket_order(table["video_id"], self.n, self.salt)
        table = table.take(pa.array(order))
        try:
            for b in np.flatnonzero(np.diff(bounds)):
                part = table.slice(int(bounds[b]), int(bounds[b + 1] - bounds[b]))
                key = (int(b), role)
                if key not in self.writers:
                    self.writers[key] = pa.ipc.new_file(str(self.path(int(b), role)), table.schema)
                self.writers[key].write_table(part)
                self.rows[b, side] += part.num_rows
        except OSError as exc:
            if exc.errno == errno.ENOSPC or "No space left" in str(exc):
                raise NoSpaceError(self.root) from exc
            raise

    def finish_writing(self) -> None:
        for w in self.writers.values():
            w.close()
        self.writers.clear()

    def read(self, bucket: int, role: str) -> pa.Table:
        """The rows of one bucket of one table, in input order (an empty table when none)."""
        path = self.path(bucket, role)
        if not path.exists():
            return self.schemas[role].empty_table() if role in self.schemas else pa.table({})
        with pa.memory_map(str(path)) as source:
            return pa.ipc.open_file(source).read_all()


class MemoryBuckets:
    """Hash buckets of tables held in memory, read like `TempBuckets` (nothing on disk).

    Used when both tables fit the budget: the rows are cut into units by the same hash, so
    the core's per-row scratch is that of one unit, not of the whole input. A bucket is
    gathered batch by batch (Arrow's take over a many-chunk table of vectors is slow).
    """

    def __init__(self, tables: dict[str, pa.Table], n_buckets: int, salt: int = 0) -> None:
        self.n = n_buckets
        self.salt = salt
        self.schemas = {role: t.schema for role, t in tables.items()}
        self.rows = np.zeros((n_buckets, 2), dtype=np.int64)
        self._batches: dict[str, list[pa.RecordBatch]] = {}
        self._index: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for side, role in enumerate(("experts", "predictions")):
            table = tables[role]
            batches = [b for b in table.to_batches() if b.num_rows]
            order, bounds = bucket_order(table["video_id"], n_buckets, salt)
            starts = np.cumsum([0, *(b.num_rows for b in batches)]).astype(np.int64)
            self._batches[role] = batches
            self._index[role] = (order, bounds, starts)
            self.rows[:, side] = np.diff(bounds)

    def read(self, bucket: int, role: str) -> pa.Table:
        """The rows of one bucket of one table, in input order."""
        order, bounds, starts = self._index[role]
        rows = order[bounds[bucket] : bounds[bucket + 1]]
        cuts = np.searchsorted(rows, starts)
        parts = [
            batch.take(pa.array(rows[cuts[i] : cuts[i + 1]] - starts[i]))
            for i, batch in enumerate(self._batches[role])
            if cuts[i + 1] > cuts[i]
        ]
        if not parts:
            return self.schemas[role].empty_table()
        # One chunk: the core reads the vectors without another copy.
        return pa.Table.from_batches(parts, self.schemas[role]).combine_chunks()


class NoSpaceError(InputError):
    """The disk under ``engine.temp_dir`` filled up while partitioning."""

    def __init__(self, root: Path) -> None:
        super().__init__(
            f"{root.parent}: no space left on the device while writing the temporary "
            f"partitions of the inputs (they were removed). Free space there, point "
            f"engine.temp_dir at a larger local disk, or raise engine.memory_budget_mb so more "
            f"of the input is scored in memory."
        )


def n_buckets_for(total_rows: int, unit_rows: int) -> int:
    """How many hash buckets keep an average bucket well inside ``unit_rows``."""
    return int(min(MAX_BUCKETS, max(2, math.ceil(1.5 * total_rows / max(1, unit_rows)))))
