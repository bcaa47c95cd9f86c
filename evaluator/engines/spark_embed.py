"""Frame embeddings on Spark executors (``engine=spark`` with an image embedder).

The driver builds the embedder once (weights resolved there, as for ``engine=local``) and sends
its parts to the executors once, not with every batch: a broadcast on a classic session, a file
artifact of the session on Spark Connect (which has no broadcast). An
iterator-of-batches pandas UDF rebuilds the model once per Python worker (workers are reused
between tasks) on the executor's device (``embedder.device=auto``: its GPU when it has one) and
embeds its batches with `evaluator.embed.embed_frames`: the same content hashing, the same cache
keys, the same on-disk cache (point ``embedder.cache_dir`` at storage the executors share and a
local run reuses what the cluster computed, and back). Each distinct frame (an image path, or a
video path and time) is embedded once and joined back to the rows that use it.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from evaluator.engines.spark_inputs import SparkPosterTable
from evaluator.errors import InputError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

# Per Python worker: the driver embedder's identity -> the rebuilt embedder (first batch).
_EMBEDDERS: dict[str, Any] = {}
OUTPUT = "embedding array<float>, n_computed long, n_cached long, device string"


@dataclass(frozen=True)
class ArtifactParts:
    """The embedder's parts in a file artifact of a Spark Connect session, loaded on first use.

    Attributes:
        name: the file's name among the session's artifacts.
    """

    name: str

    @property
    def value(self) -> Any:
        """The parts, read from the executor's copy of the file (as ``broadcast.value``)."""
        import torch
        from pyspark import SparkFiles

        # Our own file, written by the driver of this evaluation (a pickled module).
        return torch.load(SparkFiles.get(self.name), map_location="cpu", weights_only=False)


def parts_on_executors(spark: Any, embedder: Any) -> Any:
    """The embedder's parts, sent to the executors once; ``.value`` there gives them back.

    Classic session: a broadcast. Spark Connect (no SparkContext): a file added to the
    session's artifacts, named by its content.
    """
    import torch

    from evaluator.embed.backbone import embedder_parts
    from evaluator.engines.spark_session import is_connect

    parts = embedder_parts(embedder)
    if not is_connect(spark):
        return spark.sparkContext.broadcast(parts)
    with tempfile.TemporaryDirectory(prefix="video-evaluator-embedder-") as tmp:
        saved = Path(tmp) / "parts.pt"
        torch.save(parts, saved)
        # Named by content: the session refuses a second file of the same name with other
        # bytes (the same embedder pickles to other bytes in another evaluation).
        key = hashlib.sha256(saved.read_bytes()).hexdigest()[:16]
        path = saved.rename(Path(tmp) / f"video-evaluator-embedder-{key}.pt")
        spark.addArtifacts(str(path), file=True)
    return ArtifactParts(path.name)


@dataclass(frozen=True)
class SparkEmbedding:
    """What embedding one table on Spark did.

    Attributes:
        table: the table with its ``embedding`` column.
        n_computed / n_cached: distinct frames computed now / found in the cache (distinct
            within each batch of an executor; a frame is in one batch only).
        devices: the devices the executors ran the model on.
        n_left_out: distinct frames of the table that got no vector (``only``).
        persisted: the persisted vectors the table joins; `release` them after scoring.
    """

    table: SparkPosterTable
    n_computed: int
    n_cached: int
    devices: tuple[str, ...]
    n_left_out: int = 0
    persisted: Any = None

    def release(self) -> None:
        """Drop the persisted vectors from the session's cache (a reused session, a notebook's
        or a Connect server's, would keep them, and would answer a later evaluation of the
        same paths from them)."""
        if self.persisted is not None:
            self.persisted.unpersist()


def image_root_of(source: str, image_root: str | None) -> str:
    """The folder relative ``image`` / ``video_path`` values start from.

    ``data.image_root`` when set, else the folder holding the table (for a folder of part
    files: the folder that holds that folder). A URI or catalog table needs ``data.image_root``.

    Raises:
        InputError: no root can be derived.
    """
    if image_root is not None:
        return str(Path(image_root).resolve())
    if source.startswith("table:") or "://" in source:
        raise InputError(
            f"{source}: frames are named relative to a folder, and a table or URI has none: set "
            f"data.image_root to the folder (on storage every executor mounts) they start from."
        )
    return str(Path(source.rstrip("/")).resolve().parent)


def _embed_batches(
    batches: Iterator[pd.DataFrame],
    *,
    parts: Any,
    key: str,
    cache_root: str | None,
    root: str,
    column: str,
    source: str,
) -> Iterator[pd.DataFrame]:
    """mapInPandas body: (path[, timestamp]) batches -> vectors, counts and device per batch."""
    from evaluator.embed import EmbeddingCache, FrameReadError, FrameRef, embed_frames
    from evaluator.embed.backbone import rebuild_embedder

    embedder = _EMBEDDERS.get(key)
    if embedder is None:
        embedder = _EMBEDDERS[key] = rebuild_embedder(parts.value)
    cache = None if cache_root is None else EmbeddingCache(cache_root)
    for batch in batches:
        values = batch[column].astype(str).tolist()
        resolved = _inside_root(values, root, column, source)
        if column == "image":
            refs = [FrameRef(image=str(p)) for p in resolved]
        else:
            ts = batch["timestamp"].to_numpy(dtype=float)
            refs = [
                FrameRef(video=str(p), timestamp=float(t))
                for p, t in zip(resolved, ts, strict=True)
            ]
        try:
            vectors, stats = embed_frames(refs, embedder, cache)
        except FrameReadError as exc:
            kind = "image" if column == "image" else "video"
            where = f" ({column}={values[exc.index]!r})" if exc.index >= 0 else ""
            raise InputError(
                f"{source}: column '{column}': unreadable {kind} file {exc.path} ({exc}){where}."
            ) from None
        n = len(batch)
        computed = [0] * n
        cached = [0] * n
        if n:
            computed[0], cached[0] = stats.n_computed, stats.n_cached
        yield pd.DataFrame(
            {
                **{c: batch[c] for c in batch.columns},
                "embedding": list(vectors),
                "n_computed": computed,
                "n_cached": cached,
                "device": str(embedder.device.type),
            }
        )


def _inside_root(values: list[str], root: str, column: str, source: str) -> list[Path]:
    """The paths under ``root``; a path leaving it lexically is refused (links are followed)."""
    import os

    base = Path(os.path.normpath(root))
    resolved = [Path(os.path.normpath(base / v)) for v in values]
    outside = [v for v, p in zip(values, resolved, strict=True) if not p.is_relative_to(base)]
    if outside:
        raise InputError(
            f"{source}: column '{column}': path leaves the image root {base} "
            f"(data.image_root) in {len(outside)} rows: {', '.join(map(repr, outside[:5]))}."
        )
    return resolved


def _check_batches(
    batches: Iterator[pd.DataFrame], *, root: str, column: str, source: str
) -> Iterator[pd.DataFrame]:
    """mapInPandas body: refuse paths leaving the root and timestamps past a video's end."""
    from evaluator.embed.decode import video_end_s
    from evaluator.embed.errors import FrameReadError
    from evaluator.io.images import MILLISECONDS_HINT

    for batch in batches:
        values = batch[column].astype(str).tolist()
        resolved = _inside_root(values, root, column, source)
        if column == "video_path":
            ends: dict[Path, float] = {}
            past = []
            for value, path, t in zip(values, resolved, batch["timestamp"], strict=True):
                if path not in ends:
                    try:
                        ends[path] = video_end_s(path)
                    except FrameReadError as exc:
                        raise InputError(
                            f"{source}: column '{column}': unreadable video file {path} ({exc}) "
                            f"({column}={value!r})."
                        ) from None
                if float(t) > ends[path]:
                    past.append(f"({column}={value!r}, timestamp={float(t)!r})")
            if past:
                raise InputError(
                    f"{source}: column 'timestamp': timestamp past the end of its video; "
                    f"{MILLISECONDS_HINT} in {len(past)} rows: {', '.join(past[:5])}."
                )
        yield batch.iloc[:0]


def check_frames(table: SparkPosterTable, image_root: str) -> None:
    """Refuse, on the executors, every path leaving the root and every timestamp past the end
    of its video, also of frames that need no vector (as ``engine=local`` does)."""
    column = table.image_column
    assert column is not None
    keys = [column] if column == "image" else [column, "timestamp"]
    distinct = table.frame.select(*keys).distinct()
    source = table.source

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        return _check_batches(batches, root=image_root, column=column, source=source)

    distinct.mapInPandas(run, distinct.schema).count()


def embed_table(
    table: SparkPosterTable,
    embedder: Any,
    cache_root: str | None,
    image_root: str,
    only: DataFrame | None = None,
) -> SparkEmbedding:
    """Add the ``embedding`` column to a table whose frames are files, on the executors.

    Args:
        table: a checked table with an image column.
        embedder: the driver's `evaluator.embed.Embedder` (its parts are sent once,
            `parts_on_executors`).
        cache_root: the embedding cache folder, or None (off).
        image_root: from `image_root_of`.
        only: the frames to embed (`evaluator.engines.spark_candidates.needed_frames`), or
            None for every frame; the others get a zero vector.

    Raises:
        InputError: a path that leaves the root or an unreadable file (raised on an executor).
    """
    from pyspark.sql import functions as F

    column = table.image_column
    assert column is not None
    frame: DataFrame = table.frame
    spark = frame.sparkSession
    keys = [column] if column == "image" else [column, "timestamp"]
    parts = parts_on_executors(spark, embedder)
    distinct = frame.select(*keys).distinct() if only is None else only
    schema = (
        ", ".join(f"{c} {'string' if c != 'timestamp' else 'double'}" for c in keys) + f", {OUTPUT}"
    )

    source = table.source  # the closure must not reach the DataFrame (driver-only)
    key = str(embedder.identity)

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        return _embed_batches(
            batches,
            parts=parts,
            key=key,
            cache_root=cache_root,
            root=image_root,
            column=column,
            source=source,
        )

    embedded = distinct.mapInPandas(run, schema).persist()
    try:
        totals = embedded.agg(
            F.sum("n_computed").alias("c"),
            F.sum("n_cached").alias("k"),
            F.collect_set("device").alias("d"),
        ).collect()[0]
    except Exception:
        embedded.unpersist()
        raise
    vectors = embedded.select(*keys, "embedding")
    joined = frame.join(vectors, on=keys, how="left")
    if only is not None:
        zeros = F.array_repeat(F.lit(0.0).cast("float"), int(embedder.dim))
        joined = joined.withColumn("embedding", F.coalesce(F.col("embedding"), zeros))
    columns = [*frame.columns, "embedding"]
    out = SparkPosterTable(
        table.source,
        joined.select(*columns),
        table.columns,
        table.n_rows,
        int(embedder.dim),
        table.rank_source,
        None,
    )
    left_out = 0
    if only is not None:
        left_out = frame.select(*keys).distinct().count() - embedded.count()
    return SparkEmbedding(
        out,
        int(totals["c"] or 0),
        int(totals["k"] or 0),
        tuple(totals["d"]),
        left_out,
        embedded,
    )
