"""Episode inputs checked once: per-video arrays -> the boolean columns the metrics use."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

AUTO_ACCEPT = "auto_accept"
AUTO_FLAG = "auto_flag"
HUMAN_REVIEW = "human_review"

EPISODE_ARGS = ("metadata_episode", "predicted_episode", "true_episode")


def _episode_array(name: str, values: np.ndarray) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array (one value per video), got shape {arr.shape}")
    if arr.dtype.kind in "iu":
        return arr
    if arr.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(arr) | (arr != np.round(arr)))
        if bad.size:
            raise ValueError(
                f"{name} must hold integer episode numbers; rows {bad[:5].tolist()} hold "
                f"{arr[bad[:5]].tolist()}"
            )
        return arr
    raise ValueError(f"{name} must hold integer episode numbers, got dtype {arr.dtype}")


def _confidence_array(values: np.ndarray) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"confidence must be a 1-D array (one value per video), got {arr.shape}")
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"confidence must be numeric in [0, 1], got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    bad = np.flatnonzero(~((arr >= 0.0) & (arr <= 1.0)))  # also catches NaN
    if bad.size:
        raise ValueError(
            f"confidence must be in [0, 1]; rows {bad[:5].tolist()} hold {arr[bad[:5]].tolist()}"
        )
    return arr


@dataclass(frozen=True, eq=False)
class Videos:
    """Validated per-video inputs and the derived boolean columns."""

    confidence: np.ndarray
    episode_correct: np.ndarray  # predicted == true
    flag: np.ndarray  # predicted != metadata
    mismatch: np.ndarray  # true != metadata

    @property
    def n(self) -> int:
        return len(self.flag)

    @property
    def flag_right(self) -> np.ndarray:
        return self.flag == self.mismatch


def episode_videos(
    metadata_episode: np.ndarray,
    predicted_episode: np.ndarray,
    true_episode: np.ndarray,
    confidence: np.ndarray | None,
) -> Videos:
    meta, pred, true = (
        _episode_array(name, arr)
        for name, arr in zip(
            EPISODE_ARGS, (metadata_episode, predicted_episode, true_episode), strict=True
        )
    )
    conf = np.ones(len(meta)) if confidence is None else _confidence_array(confidence)
    lengths = [len(meta), len(pred), len(true), len(conf)]
    if len(set(lengths)) != 1:
        raise ValueError(
            "metadata_episode, predicted_episode, true_episode and confidence must have one "
            f"value per video (the same length), got lengths {lengths}"
        )
    if lengths[0] == 0:
        raise ValueError("no videos: the episode inputs are empty")
    return Videos(conf, pred == true, pred != meta, true != meta)


def check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.number):
        raise ValueError(f"threshold must be a number, got {threshold!r}")
    value = float(threshold)
    if math.isnan(value):
        raise ValueError("threshold must not be NaN")
    return value


def check_target(target: float) -> float:
    if isinstance(target, bool) or not isinstance(target, int | float | np.number):
        raise ValueError(f"target accuracy must be a number in (0, 1], got {target!r}")
    value = float(target)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"target accuracy must be in (0, 1], got {target!r}")
    return value


def ratio(num: np.ndarray | float, den: np.ndarray | float, empty: float) -> np.ndarray:
    """num / den elementwise, ``empty`` where den == 0."""
    num_a = np.asarray(num, dtype=np.float64)
    den_a = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num_a, den_a).shape, empty, dtype=np.float64)
    np.divide(num_a, den_a, out=out, where=den_a != 0)
    return out
