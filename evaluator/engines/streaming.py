"""The local streaming engine: bounded-memory poster evaluation in this process.

Both tables are read in batches (only the needed columns). When both fit
``engine.memory_budget_mb`` they are scored as one unit in memory; otherwise their rows are
hash-partitioned by video id into temporary buckets on local disk (``engine.temp_dir``), and
each bucket is one work unit: all rows of its videos, from every part file. Each unit is
scored by `evaluator.engines.units.score_unit` and only its `PosterPartial` (per-video
outcomes) is kept; `merge_scored` and `finish_scored` give exactly the result of an in-memory
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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from evaluator.core.calibration import VectorSums, expert_mean
from evaluator.core.partials import FinishedPoster
from evaluator.core.poster import PosterSettings
from evaluator.engines.memory import release_free_memory, use_system_allocator
from evaluator.engines.units import finish_scored, score_unit, unit_pool_sums
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
from evaluator.report.gallery import GalleryFrames, ScoredSet, merge_scored, prune_galleries

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
        gallery: the report gallery's frames (video codes of ``finished``), or None.
    """

    finished: FinishedPoster
    experts: TablePlan
    predictions: TablePlan
    embedding_dim: int | None
    stats: StreamStats
    center: np.ndarray | None = None
    gallery: GalleryFrames | None = None


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
    n_buckets = n_buckets_for(total_rows, unit_target) if total_rows > unit_target else 1
    # Held whole, the tables take about 1.25x their Arrow data (batches, row columns, malloc).
    spilled = int(IN_MEMORY_FACTOR * data_bytes) + unit_bytes > budget_bytes
    units = _UnitScorer(
        settings, exp, pred, judge_frames, max_gallery_videos, on_unit, center == "experts"
    )
    read = _Reader(exp, pred, need, batch_rows, temp_dir, max_rows)
    if spilled:
        read.spilled(units, n_buckets)
    else:
        read.in_memory(units, n_buckets)
    merged = merge_scored(units.scored, max_gallery_videos=max_gallery_videos)
    units.scored.clear()
    release_free_memory()
    finished, gallery = finish_scored(merged, settings)
    stats = StreamStats(tuple(units.unit_rows), max_rows, spilled, n_buckets)
    dim = read.dims.dim if need else None
    return StreamedPoster(finished, exp, pred, dim, stats, units.mean, gallery)


class _UnitScorer:
    """Scores the units one after the other and keeps their partials (galleries pruned)."""

    def __init__(
        self,
        settings: PosterSettings,
        exp: TablePlan,
        pred: TablePlan,
        judge_frames: bool,
        max_gallery_videos: int | None,
        on_unit: Callable[[int, int], None] | None,
        center_on_experts: bool,
    ) -> None:
        self.settings, self.exp, self.pred = settings, exp, pred
        self.judge_frames, self.max_gallery_videos = judge_frames, max_gallery_videos
        self.on_unit = on_unit
        self.center_on_experts = center_on_experts and settings.min_cosine is not None
        self.mean: np.ndarray | None = None
        self.unit_rows: list[int] = []
        self.scored: list[ScoredSet] = []

    def find_center(self, expert_units: Iterator[pa.Table], dim: int | None) -> None:
        """``matching.center=experts``: the expert pool's mean over every unit's experts."""
        if not self.center_on_experts:
            return
        sums: list[VectorSums] = []
        for e in expert_units:
            sums.append(
                unit_pool_sums(e, self.settings, label=str(_label(self.exp)), rows_checked=True)
            )
            del e
        release_free_memory()
        self.mean = expert_mean(sums, dim or (sums[0].sums.shape[1] if sums else 0))

    def score(self, e: pa.Table, p: pa.Table) -> None:
        """Score one unit and keep its partial."""
        checkpoint()  # Ctrl-C / SIGTERM stop here, between two units
        error = duplicate_rank_error(self.pred, p)
        if error is not None:
            raise error
        self.unit_rows.append(e.num_rows + p.num_rows)
        if self.on_unit is not None:
            self.on_unit(self.unit_rows[-1], len(self.unit_rows))
        unit = score_unit(
            e,
            p,
            self.settings,
            judge_frames=self.judge_frames,
            experts_label=str(_label(self.exp)),
            predictions_label=str(_label(self.pred)),
            center=self.mean,
            rows_checked=True,  # batch by batch, as they were read
        )
        self.scored.append(unit)
        # Only the first max_gallery_videos of all units can be shown: keep no other frames.
        self.scored[:] = prune_galleries(self.scored, self.max_gallery_videos)
        release_free_memory()


@dataclass
class _Reader:
    """Reads both tables into units: held in memory when they fit, else through buckets."""

    exp: TablePlan
    pred: TablePlan
    need: bool
    batch_rows: int
    temp_dir: str | Path | None
    max_rows: int
    dims: _Dims = field(default_factory=_Dims)

    def in_memory(self, units: _UnitScorer, n_buckets: int) -> None:
        """Read both tables whole, then score them as one unit or in in-memory buckets."""
        tables = [
            _read_whole(plan, offset, self.need, self.dims, self.batch_rows)
            for plan, offset in _sides(self.exp, self.pred)
        ]
        release_free_memory()  # the decoder's scratch
        units.find_center(iter(tables[:1]), self.dims.dim)
        if n_buckets == 1:
            units.score(*tables)
            return
        in_memory = MemoryBuckets(
            dict(zip(("experts", "predictions"), tables, strict=True)), n_buckets
        )
        del tables
        for e, p in _units(in_memory, self.max_rows, self.temp_dir, depth=1):
            units.score(e, p)
            del e, p

    def spilled(self, units: _UnitScorer, n_buckets: int) -> None:
        """Partition both tables into temporary buckets on disk and score bucket by bucket."""
        with TempBuckets(self.temp_dir, n_buckets) as buckets:
            for plan, offset in _sides(self.exp, self.pred):
                _partition(buckets, plan, offset, self.need, self.dims, self.batch_rows)
            buckets.finish_writing()
            units.find_center((buckets.read(b, "experts") for b in range(buckets.n)), self.dims.dim)
            for e, p in _units(buckets, self.max_rows, self.temp_dir, depth=1):
                units.score(e, p)
                del e, p


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
