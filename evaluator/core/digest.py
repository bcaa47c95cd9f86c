"""Content hash of an evaluation set, so runs on different test sets are never compared.

The hash is built per video and then combined, so it can be computed over disjoint sets of
videos (work units, Spark executors) and merged: `video_digests` hashes each video's rows into
128 bits (a sum of per-row hashes, so the rows' order does not matter), and
`combine_video_digests` hashes the videos' ids and digests, in id order, with SHA-256.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

_SEEDS = (np.uint64(0x243F6A8885A308D3), np.uint64(0x13198A2E03707344))
_ROWS_PER_CHUNK = 16_384
# The vectors are hashed in chunks of at most this many elements: each of the chunk's uint64
# temporaries is then 8 MB (16k rows at 64-d; a 16k-row chunk at 512-d took 190 MB).
_ELEMENTS_PER_CHUNK = 1 << 20


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer on a uint64 array (wrapping arithmetic)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _weights(dim: int) -> np.ndarray:
    """(2, dim) odd uint64 multipliers, fixed for a given dim (a change in any one element of
    a vector always changes its hash)."""
    rng = np.random.default_rng(0x76696465 + dim)
    return rng.integers(0, 2**63, size=(2, dim), dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def video_digests(
    video: np.ndarray, timestamp: np.ndarray, embedding: np.ndarray | None, n_videos: int
) -> np.ndarray:
    """128-bit content hash of each video's rows, independent of row order.

    Each row (timestamp, embedding) is hashed to two 64-bit words; a video's digest is the sum
    of its rows' words modulo 2**64. ``-0.0`` hashes like ``0.0``.

    Args:
        video: int64 video code per row, in ``0 .. n_videos - 1``.
        timestamp: float64 seconds per row.
        embedding: (n, D) vectors per row (hashed as float32), or None.
        n_videos: number of video codes.

    Returns:
        (n_videos, 2) uint64; zeros for a video without rows.
    """
    video = np.asarray(video, dtype=np.int64)
    ts = (np.asarray(timestamp, dtype=np.float64) + 0.0).view(np.uint64)
    n = video.shape[0]
    words = np.empty((2, n), dtype=np.uint64)
    weights = None if embedding is None else _weights(int(embedding.shape[1]))
    step = _ROWS_PER_CHUNK
    if embedding is not None:
        step = max(1, min(step, _ELEMENTS_PER_CHUNK // max(1, int(embedding.shape[1]))))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        for j in (0, 1):
            row = _mix(ts[lo:hi] ^ _SEEDS[j])
            if embedding is not None and weights is not None:
                emb = np.asarray(embedding[lo:hi], dtype="<f4") + np.float32(0.0)
                vec = (emb.view(np.uint32).astype(np.uint64) * weights[j]).sum(axis=1)
                row = _mix(row + vec)
            words[j, lo:hi] = row
    out = np.zeros((n_videos, 2), dtype=np.uint64)
    if n:
        order = np.argsort(video, kind="stable")
        v = video[order]
        starts = np.flatnonzero(np.r_[True, v[1:] != v[:-1]])
        for j in (0, 1):
            out[v[starts], j] = np.add.reduceat(words[j, order], starts)
    return out


def combine_video_digests(
    video_ids: np.ndarray, digests: np.ndarray, embedding_dim: int | None
) -> str:
    """SHA-256 over the videos' ids and `video_digests`, in id order.

    Args:
        video_ids: str id per video (distinct).
        digests: (n, 2) uint64 from `video_digests`, aligned with ``video_ids``.
        embedding_dim: the vectors' length, or None when they play no part.

    Returns:
        64 hex characters.
    """
    ids = np.asarray(video_ids, dtype=object).astype(str)
    order = np.argsort(ids, kind="stable")
    h = hashlib.sha256()
    h.update(b"video-evaluator/dataset/v2\x00")
    h.update(b"-" if embedding_dim is None else str(int(embedding_dim)).encode())
    h.update(b"\x00" + "\x00".join(ids[order].tolist()).encode("utf-8") + b"\x01")
    h.update(np.ascontiguousarray(np.asarray(digests, dtype="<u8")[order]).data)
    return h.hexdigest()


def dataset_digest(
    video_ids: np.ndarray, timestamps: np.ndarray, embeddings: np.ndarray | None = None
) -> str:
    """Content hash of the rows (video id, timestamp, embedding), independent of row order.

    The same value as `video_digests` + `combine_video_digests` over any split of the videos.

    Args:
        video_ids: str video id per row.
        timestamps: float64 seconds per row.
        embeddings: (n, D) vectors per row, or None when they play no part.

    Returns:
        64 hex characters.
    """
    ids = np.asarray(video_ids, dtype=object).astype(str)
    vocab, codes = np.unique(ids, return_inverse=True)
    digests = video_digests(codes, timestamps, embeddings, vocab.shape[0])
    return combine_video_digests(
        vocab.astype(object), digests, None if embeddings is None else embeddings.shape[1]
    )


def episode_set_digest(
    video_ids: np.ndarray,
    metadata_episode: np.ndarray,
    true_episode: np.ndarray,
    text_true: np.ndarray | None = None,
) -> str:
    """SHA-256 of an episode evaluation set: its (video id, metadata, true episode) rows.

    The predictions and confidences play no part, so every model evaluated on the same set
    gets the same digest. Rows are sorted by video id (unique in a valid set) first, so the
    row order of the file does not matter.

    Args:
        video_ids: str video id per video.
        metadata_episode: integer episode number in the metadata per video.
        true_episode: integer verified episode number per video.
        text_true: the transcription of the burned-in text per video (str, None = not
            transcribed), or None without transcriptions: then the digest is the one of a set
            without text, so sets without text keep their digest.

    Returns:
        64 hex characters.
    """
    ids = np.asarray(video_ids, dtype=str)
    meta = np.asarray(metadata_episode, dtype="<i8")
    true = np.asarray(true_episode, dtype="<i8")
    order = np.lexsort((true, meta, ids))
    h = hashlib.sha256()
    h.update(b"video-evaluator/episode-set/v1\x00")
    h.update("\x00".join(ids.tolist()).encode("utf-8"))
    h.update(b"\x01")
    h.update(meta[order].tobytes())
    h.update(b"\x02")
    h.update(true[order].tobytes())
    if text_true is not None:
        # The transcriptions are part of the truth text_exact_match is paired on.
        texts = np.asarray(text_true, dtype=object)[order]
        h.update(b"\x03")
        h.update(json.dumps(texts.tolist(), ensure_ascii=False).encode("utf-8"))
    return h.hexdigest()
