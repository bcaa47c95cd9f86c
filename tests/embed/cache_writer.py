"""Child-process side of the concurrent-writer test; imports only the cache (no torch)."""

from __future__ import annotations

import hashlib

import numpy as np

from evaluator.embed.cache import EmbeddingCache

DIM = 16


def key_of(i: int) -> bytes:
    return hashlib.sha256(f"frame-{i}".encode()).digest()


def vector_of(key: bytes) -> np.ndarray:
    """The one correct vector for a key, so any torn or mixed-up write is detectable."""
    return np.frombuffer(key[:DIM], dtype=np.uint8).astype(np.float32)


def write_many(root: str, namespace: str, start: int, stop: int, chunk: int) -> None:
    cache = EmbeddingCache(root)
    for lo in range(start, stop, chunk):
        keys = [key_of(i) for i in range(lo, min(lo + chunk, stop))]
        cache.put(namespace, keys, np.stack([vector_of(k) for k in keys]))
