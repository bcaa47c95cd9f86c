"""A naive similarity calibration: plain loops over rows and pairs, sharing no code with the core.

The expert pool: expert rows of the eligible videos after exact duplicates are dropped (first
occurrence kept; a video is eligible with >= min_expert_frames kept rows, zero vectors
included) whose vector is not zero. Unrelated pairs: every unordered pair of pool frames from
two different videos whose vectors (as matched) are not zero.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np


def naive_pool(rows: Sequence[dict[str, Any]], min_expert_frames: int) -> list[tuple[Any, list]]:
    """(video, vector) of each pool frame, in input order."""
    seen: set[tuple] = set()
    kept = []
    for row in rows:
        key = (row["video_id"], row["timestamp"], tuple(row["embedding"]), row.get("annotator"))
        if key in seen:
            continue
        seen.add(key)
        kept.append(row)
    per_video = Counter(r["video_id"] for r in kept)
    return [
        (r["video_id"], [float(x) for x in r["embedding"]])
        for r in kept
        if per_video[r["video_id"]] >= min_expert_frames and any(x != 0 for x in r["embedding"])
    ]


def naive_mean(pool: list[tuple[Any, list]]) -> list[float]:
    dim = len(pool[0][1])
    return [math.fsum(v[d] for _, v in pool) / len(pool) for d in range(dim)]


def naive_cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = sum(x * x for x in a)
    nb = sum(y * y for y in b)
    return max(-1.0, min(1.0, dot / math.sqrt(na * nb)))


def naive_unrelated_cosines(
    pool: list[tuple[Any, list]], center: Sequence[float] | None
) -> list[float]:
    """Cosines of every unrelated pair of the pool (vectors centred when ``center`` is given)."""
    frames = []
    for video, v in pool:
        if center is not None:
            v = [x - c for x, c in zip(v, center, strict=True)]
        if any(x != 0 for x in v):
            frames.append((video, v))
    out = []
    for i in range(len(frames)):
        for j in range(i + 1, len(frames)):
            if frames[i][0] != frames[j][0]:
                out.append(naive_cosine(frames[i][1], frames[j][1]))
    return out


def naive_figures(cosines: Sequence[float], min_cosine: float) -> tuple[float, float, float]:
    """(false match rate, q99, median) by a loop and numpy's linear quantile."""
    passing = 0
    for c in cosines:
        if c >= min_cosine:
            passing += 1
    return (
        passing / len(cosines),
        float(np.quantile(np.asarray(cosines), 0.99)),
        float(np.quantile(np.asarray(cosines), 0.5)),
    )
