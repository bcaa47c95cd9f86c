"""Content hash of an evaluation set, so runs on different test sets are never compared."""

from __future__ import annotations

import hashlib

import numpy as np


def dataset_digest(
    video_ids: np.ndarray, timestamps: np.ndarray, embeddings: np.ndarray | None = None
) -> str:
    """SHA-256 of the rows (video id, timestamp, embedding), independent of row order.

    Args:
        video_ids: str video id per row.
        timestamps: float64 seconds per row.
        embeddings: (n, D) vectors per row, or None when they play no part.

    Returns:
        64 hex characters.
    """
    ids = np.asarray(video_ids, dtype=object)
    ts = np.asarray(timestamps, dtype=np.float64) + 0.0
    # Sort the distinct ids once (few) and rows by (id rank, timestamp) numerically (many).
    vocab, codes = np.unique(ids.astype(str), return_inverse=True)
    order = np.lexsort((ts, codes))
    ids = vocab[codes[order]]
    h = hashlib.sha256()
    h.update(b"video-evaluator/dataset/v1\x00")
    h.update("\x00".join(ids.tolist()).encode("utf-8"))
    h.update(b"\x01")
    h.update(np.ascontiguousarray(ts[order], dtype="<f8").data)
    if embeddings is not None:
        # +0.0 makes -0.0 and 0.0 hash alike; memoryview hashes without another copy.
        emb = np.asarray(embeddings, dtype="<f4")[order]
        emb += np.float32(0.0)
        h.update(b"\x02" + str(emb.shape[1]).encode() + b"\x00")
        h.update(np.ascontiguousarray(emb).data)
    return h.hexdigest()


def episode_set_digest(
    video_ids: np.ndarray, metadata_episode: np.ndarray, true_episode: np.ndarray
) -> str:
    """SHA-256 of an episode evaluation set: its (video id, metadata, true episode) rows.

    The predictions and confidences play no part, so every model evaluated on the same set
    gets the same digest. Rows are sorted by video id (unique in a valid set) first, so the
    row order of the file does not matter.

    Args:
        video_ids: str video id per video.
        metadata_episode: integer episode number in the metadata per video.
        true_episode: integer verified episode number per video.

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
    return h.hexdigest()
