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
    ids = np.asarray(video_ids, dtype=str)
    ts = np.asarray(timestamps, dtype=np.float64) + 0.0
    order = np.lexsort((ts, ids))
    h = hashlib.sha256()
    h.update(b"video-evaluator/dataset/v1\x00")
    h.update("\x00".join(ids[order].tolist()).encode("utf-8"))
    h.update(b"\x01")
    h.update(ts[order].astype("<f8").tobytes())
    if embeddings is not None:
        emb = np.ascontiguousarray(np.asarray(embeddings, dtype="<f4")[order] + np.float32(0.0))
        h.update(b"\x02" + str(emb.shape[1]).encode() + b"\x00")
        h.update(emb.tobytes())
    return h.hexdigest()
