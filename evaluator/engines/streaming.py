"""The local streaming engine: bounded-memory poster evaluation in this process.

Both tables are read in batches (only the needed columns). When both fit
``engine.memory_budget_mb`` they are scored as one unit in memory; otherwise their rows are
hash-partitioned by video id into temporary buckets on local disk (``engine.temp_dir``), and
each bucket is one work unit: all rows of its videos, from every part file. Each unit is
scored by `evaluator.engines.units.score_unit` and only its `PosterPartial` (per-video
outcomes) is kept; `merge_partials` and `finish` give exactly the result of an in-memory
evaluation of everything.

Units are cut for speed, not to fill the budget: about `UNIT_TARGET_BYTES` of working set
each (the core's time per row is flat from about 0.1M rows per unit), also when the input is
held in memory (`MemoryBuckets`). Freed memory goes back to the system after each unit.

What the budget bounds: the input held in memory (when it fits) plus the rows of the unit
being scored (their Arrow data, vectors and per-row arrays of the core). Not bounded by it:
the per-video outcomes (a few hundred bytes per video). The gallery's frames are pruned after
each unit to the videos that can still be among the first ``report.max_gallery_videos``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from evaluator.core.calibration import VectorSums, expert_mean
from evaluator.core.partials import (
    FinishedPoster,
    PosterPartial,
    finish,
    merge_partials,
    prune_galleries,
)
from evaluator.core.poster import PosterSettings
from evaluator.engines.memory import release_free_memory, use_system_allocator
from evaluator.engines.units import score_unit, unit_pool_sums
from evaluator.errors import InputError
from evaluator.io.partition import (
    BATCH_ROWS,
    PARTITION_SLAB_BYTES,
    SCALAR_ROW_BYTES,
    UNIT_TARGET_BYTES,
    MemoryBuckets,
    TablePlan,
    TempBuckets,
    duplicate_rank_error,
    iter_batches,
    n_buckets_for,
    plan_table,
    rows_per_unit,
    validate_batch,
    with_row_columns,
)
from evaluator.io.sources import Source
from evaluator.lifecycle import checkpoint

MAX_SPLIT_DEPTH = 4
IN_MEMORY_FACTOR = 1.25


@dataclass(frozen=True)
class StreamStats:
    """How the evaluation was cut into units.

    Attributes:
        unit_rows: rows (both tables) of each unit scored, in order.
        max_unit_rows: the most rows a unit may hold within the budget.
        spilled: True when the rows went through temporary buckets on disk.
        n_buckets: buckets of the first partition pass (on disk, or in memory when the
            input fits the budget; 1 when it is scored as one unit).
    """

    unit_rows: tuple[int, ...]
    max_unit_rows: int
    spilled: bool
    n_buckets: int


@dataclass(frozen=True)
class StreamedPoster:
    """A finished evaluation and what was read.

    Attributes:
        finished: the merged result (`evaluator.core.partials.FinishedPoster`).
        experts / predictions: how each table was read (files, columns, rows).
        embedding_dim: the vectors' length D (None when time-only).
        stats: the units.
        center: the mean subtracted before the cosine (``matching.center=experts``), or None.
    """

    finished: FinishedPoster
    experts: TablePlan
    predictions: TablePlan
    embedding_dim: int | None
    stats: StreamStats
    center: np.ndarray | None = None


class _Dims:
    """The one vector length D of both tables, checked batch by batch."""

    def __init__(self) -> None:
        self.dim: int | None = None
        self.where: Path | None = None

    def check(self, dim: int | None, path: Path) -> None:
        if dim is None:
            return
        if self.dim is None:
            self.dim, self.where = dim, path
        elif dim != self.dim:
            raise InputError(
                f"{path}: column 'embedding': embeddings of different lengths: this file has "
                f"{dim}, {self.where} has {self.dim}; both tables need one length D."
            )


def stream_poster(
    experts: Source,
    predictions: Source,
    settings: PosterSettings,
    *,
    budget_bytes: int,
    temp_dir: str | Path | None = None,
    judge_frames: bool = False,
    want_images: bool = False,
    max_gallery_videos: int | None = None,
    batch_rows: int = BATCH_ROWS,
    on_unit: Callable[[int, int], None] | None = None,
    unit_target_bytes: int = UNIT_TARGET_BYTES,
    center: str = "off",
) -> StreamedPoster:
    """Evaluate parquet sources within a memory budget.

    Args:
        experts / predictions: the resolved inputs (parquet files, part directories, globs).
        settings: the checked settings.
        budget_bytes: the working-set bound (``engine.memory_budget_mb`` in bytes).
        temp_dir: where temporary buckets go (None: the system's temporary folder).
        judge_frames: keep the frame-by-frame view for the report's gallery.
        want_images: read the predictions' ``image`` column (report thumbnails).
        max_gallery_videos: gallery videos kept (None: all).
        batch_rows: rows per read batch.
        on_unit: called with (rows of the unit, units so far) before each unit is scored.
        unit_target_bytes: the working set units are cut to (within the budget).
        center: ``matching.center``: ``experts`` reads the expert rows of every unit once
            before scoring, for the mean of the expert pool (only per-video sums are kept).

    Returns:
        The streamed evaluation.

    Raises:
        InputError: bad input (naming file, column and rows), parts that differ, or no
            space left for the temporary buckets (they are removed).
    """
    use_system_allocator()
    need = settings.min_cosine is not None
    exp = plan_table(experts, "experts", need_embeddings=need, want_image=want_images)
    pred = plan_table(predictions, "predictions", need_embeddings=need, want_image=want_images)
    max_rows = rows_per_unit(budget_bytes, exp, pred)
    unit_target = rows_per_unit(min(budget_bytes, unit_target_bytes), exp, pred)
    total_rows = exp.n_rows + pred.n_rows
    data_bytes = sum(p.n_rows * (p.row_bytes - SCALAR_ROW_BYTES) for p in (exp, pred))
    unit_bytes = min(total_rows, unit_target) * max(exp.row_bytes, pred.row_bytes)
    dims = _Dims()
    unit_rows: list[int] = []
    partials: list[PosterPartial] = []
    mean: np.ndarray | None = None

    def center_of(expert_units: Iterator[pa.Table]) -> np.ndarray | None:
        if center != "experts" or not need:
            return None
        sums: list[VectorSums] = []
        for e in expert_units:
            sums.append(unit_pool_sums(e, settings, label=str(_label(exp)), rows_checked=True))
            del e
        release_free_memory()
        return expert_mean(sums, dims.dim or (sums[0].sums.shape[1] if sums else 0))

    def score(e: pa.Table, p: pa.Table) -> None:
        checkpoint()  # Ctrl-C / SIGTERM stop here, between two units
        error = duplicate_rank_error(pred, p)
        if error is not None:
            raise error
        unit_rows.append(e.num_rows + p.num_rows)
        if on_unit is not None:
            on_unit(unit_rows[-1], len(unit_rows))
        partial = score_unit(
            e,
            p,
            settings,
            judge_frames=judge_frames,
            experts_label=str(_label(exp)),
            predictions_label=str(_label(pred)),
            center=mean,
            rows_checked=True,  # batch by batch, as they were read
        )
        partials.append(partial)
        # Only the first max_gallery_videos of all units can be shown: keep no other frames.
        partials[:] = prune_galleries(partials, max_gallery_videos)
        release_free_memory()

    n_buckets = n_buckets_for(total_rows, unit_target) if total_rows > unit_target else 1
    # Held whole, the tables take about 1.25x their Arrow data (batches, row columns, malloc).
    spilled = int(IN_MEMORY_FACTOR * data_bytes) + unit_bytes > budget_bytes
    if not spilled:
        tables = [
            _read_whole(plan, offset, need, dims, batch_rows) for plan, offset in _sides(exp, pred)
        ]
        release_free_memory()  # the decoder's scratch
        mean = center_of(iter(tables[:1]))
        if n_buckets == 1:
            score(*tables)
        else:
            in_memory = MemoryBuckets(
                dict(zip(("experts", "predictions"), tables, strict=True)), n_buckets
            )
            del tables
            for e, p in _units(in_memory, max_rows, temp_dir, depth=1):
                score(e, p)
                del e, p
            del in_memory
    else:
        with TempBuckets(temp_dir, n_buckets) as buckets:
            for plan, offset in _sides(exp, pred):
                _partition(buckets, plan, offset, need, dims, batch_rows)
            buckets.finish_writing()
            mean = center_of(buckets.read(b, "experts") for b in range(buckets.n))
            for e, p in _units(buckets, max_rows, temp_dir, depth=1):
                score(e, p)
                del e, p
    merged = merge_partials(partials, max_gallery_videos=max_gallery_videos)
    partials.clear()
    release_free_memory()
    stats = StreamStats(tuple(unit_rows), max_rows, spilled, n_buckets)
    return StreamedPoster(
        finish(merged, settings), exp, pred, dims.dim if need else None, stats, mean
    )


def _sides(exp: TablePlan, pred: TablePlan) -> tuple[tuple[TablePlan, int], ...]:
    return ((exp, 0), (pred, exp.n_rows))


def _label(plan: TablePlan) -> Path:
    return plan.source.files[0] if plan.source.is_single_file else plan.source.label


def _partition(
    buckets: TempBuckets, plan: TablePlan, offset: int, need: bool, dims: _Dims, batch_rows: int
) -> None:
    """Validate one table batch by batch and hand its rows to the buckets in large slabs."""
    slab: list[pa.Table] = []
    slab_bytes = 0
    schema = buckets.schemas.get(plan.role)
    for path, first, row, batch in iter_batches(plan, batch_rows):
        dims.check(validate_batch(plan, path, first, batch, need), path)
        part = with_row_columns(plan, batch, row, offset, schema)
        schema = part.schema
        slab.append(part)
        slab_bytes += part.nbytes
        if slab_bytes >= PARTITION_SLAB_BYTES:
            buckets.add(plan.role, pa.concat_tables(slab))
            slab, slab_bytes = [], 0
    if slab:
        buckets.add(plan.role, pa.concat_tables(slab))


def _read_whole(plan: TablePlan, offset: int, need: bool, dims: _Dims, batch_rows: int) -> pa.Table:
    """All rows of a table that fits the budget, with its row columns, validated batch by batch
    (messages name the file and its row), so the units only convert them."""
    parts = []
    schema = None
    for path, first, row, batch in iter_batches(plan, batch_rows):
        dims.check(validate_batch(plan, path, first, batch, need), path)
        part = with_row_columns(plan, batch, row, offset, schema)
        schema = part.schema
        parts.append(part)
    return pa.concat_tables(parts)


def _units(
    buckets: TempBuckets | MemoryBuckets, max_rows: int, temp_dir: str | Path | None, depth: int
) -> Iterator[tuple[pa.Table, pa.Table]]:
    """The units of a partition: each bucket, or its split when it exceeds ``max_rows``."""
    for b in range(buckets.n):
        rows = int(buckets.rows[b].sum())
        if rows == 0:
            continue
        e, p = buckets.read(b, "experts"), buckets.read(b, "predictions")
        if rows <= max_rows or depth >= MAX_SPLIT_DEPTH or _one_video(e, p):
            yield e, p
            continue
        # Uneven hashing put too many rows here: split this bucket again with another hash.
        n = max(2, math.ceil(1.5 * rows / max_rows))
        if isinstance(buckets, MemoryBuckets):
            sub_memory = MemoryBuckets({"experts": e, "predictions": p}, n, salt=depth)
            del e, p
            yield from _units(sub_memory, max_rows, temp_dir, depth + 1)
            continue
        with TempBuckets(temp_dir or buckets.root, n, salt=depth) as sub:
            for role, table in (("experts", e), ("predictions", p)):
                sub.schemas[role] = table.schema
                for batch in table.to_batches(max_chunksize=BATCH_ROWS):
                    sub.add(role, pa.Table.from_batches([batch], table.schema))
            del e, p
            sub.finish_writing()
            yield from _units(sub, max_rows, temp_dir, depth + 1)


def _one_video(e: pa.Table, p: pa.Table) -> bool:
    ids = pa.chunked_array([*e["video_id"].chunks, *p["video_id"].chunks], pa.large_string())
    return len(ids.unique()) <= 1
