"""On-disk embedding cache: immutable shard files, published atomically.

Layout under the cache root::

    <root>/v1/<namespace>/<stem>.vecs.npy   (n, dim) float32
    <root>/v1/<namespace>/<stem>.keys.npy   (n, 32) uint8, raw sha256 keys, row i <-> vector i

``namespace`` is the first 16 hex digits of sha256(embedder identity), so one embedder's lookups
never read another's shards; the full identity is part of every key as well. A writer puts one
shard per flush (`EmbeddingCache.put`), writing each file to a temporary name in the same folder
and publishing it with ``os.replace``: first the vectors, then the keys. Readers only look at
``*.keys.npy``, so they never see a shard whose vectors are missing or half written. Shard names
carry the writer's pid and a random suffix, so concurrent writers never touch the same file; a
key written by two processes appears in two shards with equal vectors, which is harmless.

Lookups read every ``keys`` file once per process (32 bytes per vector: 6.4 MB for 200k
vectors) into a dict, and memory-map the vector files, so a hit costs one row read and
`EmbeddingCache.get` picks up shards written since the last call by listing the folder again.
"""

from __future__ import annotations

import hashlib
import os
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from evaluator.embed.spec import EmbedderSpec

LAYOUT_VERSION = "v1"
KEY_BYTES = 32


def namespace_of(identity: str) -> str:
    """The shard folder name of an embedder identity.

    Args:
        identity: `Embedder.identity`.

    Returns:
        16 hex digits.
    """
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def cache_key(content_digest: str, identity: str) -> bytes:
    """The cache key of one frame under one embedder.

    Args:
        content_digest: Hex sha256 of the image file's bytes, or of the video file's bytes
            followed by the timestamp (see `evaluator.embed.pipeline`).
        identity: `Embedder.identity`.

    Returns:
        32 raw bytes: sha256 of ``content_digest``, a separator and ``identity``.
    """
    return hashlib.sha256(f"{content_digest}\0{identity}".encode()).digest()


def _write_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex}")
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
            fh.flush()
            # fsync before the rename, so a crash cannot publish a name whose data is lost.
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class EmbeddingCache:
    """Vectors by key, in immutable shard files under one folder (layout in the module doc).

    Args:
        root: The cache folder; created on first write.

    Attributes:
        root: The cache folder.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        # Per namespace: key -> (shard stem, row), loaded shard stems, open memory maps.
        self._index: dict[str, dict[bytes, tuple[str, int]]] = {}
        self._loaded: dict[str, set[str]] = {}
        self._vectors: dict[tuple[str, str], np.ndarray] = {}

    @classmethod
    def from_spec(cls, spec: EmbedderSpec) -> EmbeddingCache | None:
        """Open the cache an embedder spec asks for.

        Args:
            spec: The embedder settings (``cache_dir``).

        Returns:
            The cache, or ``None`` when ``spec.cache_dir`` switches it off.
        """
        root = spec.resolved_cache_dir()
        return None if root is None else cls(root)

    def _folder(self, namespace: str) -> Path:
        return self.root / LAYOUT_VERSION / namespace

    def _refresh(self, namespace: str) -> None:
        folder = self._folder(namespace)
        index = self._index.setdefault(namespace, {})
        loaded = self._loaded.setdefault(namespace, set())
        if not folder.is_dir():
            return
        for keys_path in sorted(folder.glob("*.keys.npy")):
            stem = keys_path.name[: -len(".keys.npy")]
            if stem in loaded:
                continue
            try:
                keys = np.load(keys_path, allow_pickle=False)
                vectors = np.load(folder / f"{stem}.vecs.npy", mmap_mode="r", allow_pickle=False)
                if keys.ndim != 2 or keys.shape[1] != KEY_BYTES or len(keys) != len(vectors):
                    raise ValueError(f"keys {keys.shape} do not fit vectors {vectors.shape}")
            except (OSError, ValueError) as exc:
                # Only damage from outside (a crash mid-fsync, a hand-edited folder) gets here;
                # skipping the shard costs a recomputation, not a wrong vector.
                warnings.warn(
                    f"skipping unreadable embedding cache shard {keys_path}: {exc}", stacklevel=3
                )
                loaded.add(stem)
                continue
            self._vectors[(namespace, stem)] = vectors
            for row, key in enumerate(
                keys.tobytes()[i : i + KEY_BYTES] for i in range(0, keys.size, KEY_BYTES)
            ):
                index[key] = (stem, row)
            loaded.add(stem)

    def get(self, namespace: str, keys: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray | None]:
        """Look keys up.

        Args:
            namespace: `namespace_of` the embedder identity.
            keys: Raw 32-byte keys from `cache_key`.

        Returns:
            ``(found, vectors)``: a bool mask over ``keys``, and a ``(found.sum(), dim)``
            float32 array of the hits in key order (``None`` when nothing was found).
        """
        self._refresh(namespace)
        index = self._index[namespace]
        found = np.fromiter((k in index for k in keys), dtype=bool, count=len(keys))
        if not found.any():
            return found, None
        rows = [index[k] for k, hit in zip(keys, found, strict=True) if hit]
        dim = self._vectors[(namespace, rows[0][0])].shape[1]
        out = np.empty((len(rows), dim), dtype=np.float32)
        # Gather per shard with one fancy-index read each, instead of row by row.
        by_shard: dict[str, list[int]] = {}
        for pos, (stem, _) in enumerate(rows):
            by_shard.setdefault(stem, []).append(pos)
        for stem, positions in by_shard.items():
            shard_rows = [rows[p][1] for p in positions]
            out[positions] = self._vectors[(namespace, stem)][shard_rows]
        return found, out

    def put(self, namespace: str, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        """Store vectors as one new shard.

        Args:
            namespace: `namespace_of` the embedder identity.
            keys: Raw 32-byte keys, one per row of ``vectors``.
            vectors: ``(len(keys), dim)`` array; stored as float32.

        Raises:
            ValueError: Keys and vectors do not line up.
        """
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(keys) != len(vectors):
            raise ValueError(f"{len(keys)} keys for vectors of shape {vectors.shape}")
        if any(len(k) != KEY_BYTES for k in keys):
            raise ValueError(f"cache keys must be {KEY_BYTES} raw bytes")
        if not keys:
            return
        folder = self._folder(namespace)
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{os.getpid()}-{uuid.uuid4().hex}"
        key_array = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), KEY_BYTES)
        # Vectors first: a published keys file must always find its vectors.
        _write_atomic(folder / f"{stem}.vecs.npy", vectors)
        _write_atomic(folder / f"{stem}.keys.npy", key_array)

    def count(self, namespace: str) -> int:
        """Number of distinct keys stored under a namespace.

        Args:
            namespace: `namespace_of` the embedder identity.

        Returns:
            The count, including shards written by other processes so far.
        """
        self._refresh(namespace)
        return len(self._index[namespace])
