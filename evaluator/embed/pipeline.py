"""Frames in, vectors out: content hashing, cache lookup, decoding and batched inference."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from evaluator.embed.backbone import Embedder, file_sha256
from evaluator.embed.cache import EmbeddingCache, cache_key, namespace_of
from evaluator.embed.decode import DecodeCounts, FrameTable
from evaluator.embed.errors import FrameReadError
from evaluator.embed.frames import FrameRef, decode_nearest_frames, read_image

# Computed vectors are written to the cache at least this often, so an interrupted long job
# keeps most of its work, while shards stay few (about 50 for 200k vectors).
FLUSH_EVERY = 4096


@dataclass(frozen=True)
class EmbedStats:
    """What one `embed_frames` call did, counted over distinct frames.

    A frame is distinct by its cache key: the same image bytes (under any path), or the same video
    bytes and timestamp. ``n_computed + n_cached`` is the number of distinct frames.

    Attributes:
        n_computed: Distinct frames decoded and run through the model.
        n_cached: Distinct frames served from the cache.
        n_decoded: Video frames the decoders produced (a nearest frame costs the frames from
            its keyframe on).
        seconds: Wall time of the call: hashing, cache lookup, decoding and the model.
    """

    n_computed: int
    n_cached: int
    n_decoded: int = 0
    seconds: float = field(default=0.0, compare=False)  # measured, so never part of equality

    @property
    def frames_per_s(self) -> float:
        """Frames computed per second of the whole call (hashing, decoding and the model)."""
        return self.n_computed / self.seconds if self.seconds > 0 else float("nan")


# A unit of decoding work: ("image", path, [(slot, row)]) or ("video", path, [(slot, row, t)]).
_Unit = tuple[str, str, list[tuple]]


class _FrameStream(IterableDataset):
    """Decodes and preprocesses the missing frames; each unit (file) goes to one worker.

    Read failures are yielded, not raised, because an exception raised inside a DataLoader
    worker reaches the caller re-wrapped without its ``index`` and ``path``.
    """

    def __init__(
        self, units: list[_Unit], transform: Callable, tables: Mapping[str, FrameTable]
    ) -> None:
        self.units = units
        self.transform = transform
        self.tables = tables

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor | None, FrameReadError | None, int]]:
        info = get_worker_info()
        units = self.units if info is None else self.units[info.id :: info.num_workers]
        for kind, path, requests in units:
            try:
                if kind == "image":
                    ((slot, row),) = requests
                    yield slot, self.transform(read_image(path, index=row)), None, 0
                else:
                    slot_of = {row: slot for slot, row, _ in requests}
                    counts = DecodeCounts()
                    decoded = decode_nearest_frames(
                        path,
                        [t for _, _, t in requests],
                        [row for _, row, _ in requests],
                        counts,
                        self.tables.get(path),
                    )
                    seen = 0
                    for row, rgb, _time in decoded:
                        # Each item carries the frames decoded since the previous one.
                        n, seen = counts.frames_decoded - seen, counts.frames_decoded
                        yield slot_of[row], self.transform(Image.fromarray(rgb)), None, n
            except FrameReadError as exc:
                yield -1, None, exc, 0
                return


def embed_frames(
    frames: Sequence[FrameRef],
    embedder: Embedder,
    cache: EmbeddingCache | None,
    *,
    label: str = "frames",
    frame_tables: Mapping[str, FrameTable] | None = None,
) -> tuple[np.ndarray, EmbedStats]:
    """Embed frames, reusing cached vectors and caching new ones.

    Each distinct file is hashed once; identical frames are embedded once; each video file is
    opened once and decoded once, forward only (`decode_nearest_frames`). Decoding and
    preprocessing run in ``embedder.spec.workers()`` worker processes while the model runs.
    Progress bars name ``label`` and the stage (hashing, decoding, embedding), with frames/s
    and the time left.

    Args:
        frames: The frames, in the order of the returned rows.
        embedder: From `build_embedder`.
        cache: Where vectors are looked up and stored; ``None`` computes everything.
        label: What is embedded, in the progress bars (the tables' names).
        frame_tables: Video path -> its frames (`evaluator.embed.decode.probe_video`) when
            already read, so that the decoders do not read the index or packets again.

    Returns:
        ``(vectors, stats)``: a ``(len(frames), embedder.dim)`` float32 array and the counts.

    Raises:
        FrameReadError: A file is missing or unreadable; ``.index`` is the position in
            ``frames`` of (one of) the frames that use it.
    """
    started = time.perf_counter()
    n = len(frames)
    identity = embedder.identity
    digests: dict[str, str] = {}
    slot_of_key: dict[bytes, int] = {}
    slot_rows: list[int] = []  # first row of each slot, named in errors
    row_slot = np.empty(n, dtype=np.int64)
    n_files = len({ref.path for ref in frames})
    hashing = _bar(embedder, n_files, f"{label}: hashing", "file")
    for row, ref in enumerate(frames):
        path = ref.path
        if path not in digests:
            hashing.update(1)
            try:
                digests[path] = file_sha256(path)
            except OSError as exc:
                raise FrameReadError(
                    f"cannot read {'image' if ref.image else 'video'} {path} (frame #{row}): "
                    f"{exc.strerror or exc}",
                    index=row,
                    path=path,
                ) from exc
        if ref.image is not None:
            content = f"image:{digests[path]}"
        else:
            # repr() of a float round-trips exactly, so equal times give equal keys.
            content = f"video:{digests[path]}@{float(cast(float, ref.timestamp))!r}"
        key = cache_key(content, identity)
        slot = slot_of_key.setdefault(key, len(slot_of_key))
        if slot == len(slot_rows):
            slot_rows.append(row)
        row_slot[row] = slot
    hashing.close()

    keys = list(slot_of_key)
    unique = np.zeros((len(keys), embedder.dim), dtype=np.float32)
    namespace = namespace_of(identity)
    found = np.zeros(len(keys), dtype=bool)
    if cache is not None and keys:
        found, hits = cache.get(namespace, keys)
        if hits is not None:
            unique[found] = hits
    missing = np.flatnonzero(~found)
    n_decoded = 0
    if len(missing):
        n_decoded = _compute(
            frames,
            missing,
            slot_rows,
            keys,
            unique,
            embedder,
            cache,
            namespace,
            label,
            frame_tables or {},
        )
    stats = EmbedStats(
        n_computed=len(missing),
        n_cached=int(found.sum()),
        n_decoded=n_decoded,
        seconds=time.perf_counter() - started,
    )
    return unique[row_slot], stats


def _bar(embedder: Embedder, total: int, desc: str, unit: str):
    from tqdm.auto import tqdm

    # A bar for a single batch is noise; longer jobs deserve one.
    show = embedder.spec.progress and total > embedder.spec.batch_size
    return tqdm(total=total, desc=desc, unit=unit, disable=not show, smoothing=0.1)


def _compute(
    frames, missing, slot_rows, keys, unique, embedder, cache, namespace, label, frame_tables
) -> int:
    units: list[_Unit] = []
    videos: dict[str, list[tuple]] = {}
    for slot in missing.tolist():
        row = slot_rows[slot]
        ref = frames[row]
        if ref.image is not None:
            units.append(("image", ref.image, [(slot, row)]))
        else:
            videos.setdefault(ref.path, []).append((slot, row, float(cast(float, ref.timestamp))))
    # Big videos first, so that no worker is left with the longest file at the end.
    by_size = sorted(videos.items(), key=lambda item: -len(item[1]))
    units.extend(("video", path, requests) for path, requests in by_size)

    spec = embedder.spec
    workers = min(spec.workers(), len(units))
    loader = DataLoader(
        _FrameStream(units, embedder.transform, frame_tables),
        batch_size=None,
        num_workers=workers,
        # Workers are short-lived here; pinning only pays off when copying to a GPU.
        pin_memory=embedder.device.type == "cuda",
        # Each worker keeps a few frames ready, so the model never waits on one decoder.
        prefetch_factor=max(2, spec.batch_size // max(workers, 1)) if workers else None,
    )
    order: list[int] = []  # slots in the order tensors reach the model
    decoding = _bar(embedder, len(missing), f"{label}: decoding", "frame")
    n_decoded = 0

    def tensors() -> Iterator[torch.Tensor]:
        nonlocal n_decoded
        for slot, tensor, error, decoded in loader:
            if error is not None:
                raise error
            order.append(slot)
            n_decoded += decoded
            decoding.update(1)
            decoding.set_postfix(decoded=n_decoded, refresh=False)
            yield tensor

    done = 0  # vectors computed so far, in `order`
    flushed = 0
    try:
        for batch in embedder.embed_tensors(
            tensors(), total=len(missing), desc=f"{label}: embedding"
        ):
            unique[order[done : done + len(batch)]] = batch
            done += len(batch)
            if cache is not None and done - flushed >= FLUSH_EVERY:
                _flush(cache, namespace, keys, unique, order[flushed:done])
                flushed = done
    finally:
        decoding.close()
        # Keep what was computed even when a later frame fails to read.
        if cache is not None and done > flushed:
            _flush(cache, namespace, keys, unique, order[flushed:done])
    return n_decoded


def _flush(cache: EmbeddingCache, namespace: str, keys, unique, slots: list[int]) -> None:
    cache.put(namespace, [keys[s] for s in slots], unique[slots])
