"""Percentile bootstrap over videos.

Videos are the unit of resampling: one resample draws ``n`` videos with replacement from the
``n`` evaluated videos, and a metric that is a mean over videos is recomputed as the weighted
mean with weights = how often each video was drawn. Every column of a multi-metric input is
computed from the same resamples, so intervals of related metrics (recall@1, recall@5, ...)
stay consistent with each other.

Resamples are produced in row blocks of about ``_BLOCK_CELLS`` counts so memory stays bounded
(a few MB) however many videos there are; :func:`resample_counts` stacks the same blocks, so
it returns exactly the resamples the statistics are computed from.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BootstrapResult",
    "as_value_matrix",
    "bootstrap_mean_ci",
    "check_confidence",
    "check_resample_args",
    "iter_resample_counts",
    "percentile_interval",
    "resample_counts",
    "resampled_means",
]

# Number of (resample, video) cells per block: 2**20 int64 counts = 8 MB. Fixed, so the
# resamples for a given (n, n_resamples, seed) never depend on the machine.
_BLOCK_CELLS = 1 << 20


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Point estimates and percentile bootstrap intervals of per-column means.

    Attributes:
        estimate: Mean of each column over all videos, shape (m,).
        low: Lower end of the two-sided percentile interval, shape (m,).
        high: Upper end of the two-sided percentile interval, shape (m,).
        n: Number of videos.
        n_resamples: Number of bootstrap resamples.
        confidence: Two-sided confidence level of ``[low, high]``.
    """

    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: int
    n_resamples: int
    confidence: float


def check_resample_args(n: int, n_resamples: int, seed: int) -> None:
    """Validate the arguments that define a set of bootstrap resamples.

    Args:
        n: Number of videos (>= 0).
        n_resamples: Number of resamples (>= 1).
        seed: Seed for ``np.random.default_rng`` (>= 0).

    Raises:
        ValueError: If an argument is not an integer or is out of range.
    """
    for name, value in (("n", n), ("n_resamples", n_resamples), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")


def check_confidence(confidence: float, name: str = "confidence") -> float:
    """Validate a confidence level (or a one-sided alpha) strictly between 0 and 1.

    Args:
        confidence: The level to check.
        name: Argument name used in the error message.

    Returns:
        The level as a Python float.

    Raises:
        ValueError: If the level is not a finite number in the open interval (0, 1).
    """
    if isinstance(confidence, bool) or not isinstance(confidence, int | float | np.floating):
        raise ValueError(f"{name} must be a number in (0, 1), got {confidence!r}")
    value = float(confidence)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {confidence!r}")
    return value


def iter_resample_counts(n: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Yield the bootstrap resample counts in consecutive row blocks.

    Concatenating the blocks gives exactly :func:`resample_counts` ``(n, n_resamples, seed)``.
    Use this to reduce each block before the next is drawn, so memory stays bounded.

    Args:
        n: Number of videos.
        n_resamples: Total number of resamples (rows) over all blocks.
        seed: Seed for ``np.random.default_rng``.

    Yields:
        int64 arrays of shape (b, n), b >= 1, whose rows each sum to ``n``.

    Raises:
        ValueError: If an argument is not a non-negative integer or ``n_resamples < 1``.
    """
    check_resample_args(n, n_resamples, seed)
    rng = np.random.default_rng(seed)
    if n == 0:
        yield np.zeros((n_resamples, 0), dtype=np.int64)
        return
    rows = max(1, _BLOCK_CELLS // n)
    for start in range(0, n_resamples, rows):
        b = min(rows, n_resamples - start)
        draws = rng.integers(0, n, size=(b, n), dtype=np.int64)
        # Offset row r by r * n so one flat bincount counts every row separately.
        draws += (np.arange(b, dtype=np.int64) * n)[:, None]
        yield np.bincount(draws.ravel(), minlength=b * n).reshape(b, n)


def resample_counts(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """How often each video is drawn in each bootstrap resample.

    Row r is the outcome of drawing ``n`` video indices uniformly with replacement
    (``rng.integers(0, n, size=n)`` with ``rng = np.random.default_rng(seed)``, rows drawn in
    order) and counting each index: ``counts[r, i]`` = number of times video i was drawn, so
    every row sums to ``n``. A resampled mean is ``counts[r] @ values / n``.

    Args:
        n: Number of videos.
        n_resamples: Number of resamples (rows).
        seed: Seed for ``np.random.default_rng``; the same seed gives the same counts.

    Returns:
        int64 array of shape (n_resamples, n).

    Raises:
        ValueError: If an argument is not a non-negative integer or ``n_resamples < 1``.

    Example:
        >>> counts = resample_counts(4, 3, seed=0)
        >>> counts.shape, counts.sum(axis=1).tolist()
        ((3, 4), [4, 4, 4])
    """
    return np.concatenate(list(iter_resample_counts(n, n_resamples, seed)), axis=0)


def as_value_matrix(values: np.ndarray, name: str = "values") -> tuple[np.ndarray, bool]:
    """Convert per-video values to a float64 (n, m) matrix.

    Args:
        values: Array of shape (n,) or (n, m), numeric or boolean.
        name: Argument name used in error messages.

    Returns:
        The (n, m) float64 matrix and whether the input was one-dimensional.

    Raises:
        ValueError: If the array is not 1-D or 2-D, not numeric, or holds NaN or inf.
    """
    arr = np.asarray(values)
    if arr.ndim not in (1, 2):
        raise ValueError(f"{name} must have shape (n,) or (n, m), got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric or boolean, got dtype {arr.dtype}")
    matrix = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(matrix)):
        bad = np.flatnonzero(~np.all(np.isfinite(matrix.reshape(len(matrix), -1)), axis=1))
        raise ValueError(f"{name} must be finite; NaN or inf in rows {bad[:5].tolist()}")
    one_d = matrix.ndim == 1
    return (matrix[:, None] if one_d else matrix), one_d


def resampled_means(matrix: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Column means of ``matrix`` under each bootstrap resample of its rows.

    ``means[r, j] = sum_i counts[r, i] * matrix[i, j] / n`` with ``counts`` =
    :func:`resample_counts` ``(n, n_resamples, seed)``.

    Args:
        matrix: float64 array of shape (n, m), n >= 1.
        n_resamples: Number of resamples.
        seed: Seed for ``np.random.default_rng``.

    Returns:
        float64 array of shape (n_resamples, m).

    Raises:
        ValueError: If ``matrix`` has no rows or the resampling arguments are invalid.
    """
    n = matrix.shape[0]
    if n == 0:
        raise ValueError("cannot resample the means of zero videos")
    out = np.empty((n_resamples, matrix.shape[1]), dtype=np.float64)
    start = 0
    for block in iter_resample_counts(n, n_resamples, seed):
        out[start : start + len(block)] = block @ matrix
        start += len(block)
    out /= n
    return out


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided percentile interval of bootstrap samples along axis 0.

    ``low = quantile(samples, (1 - c) / 2)`` and ``high = quantile(samples, (1 + c) / 2)``
    with numpy's default (linear) quantile method.

    Args:
        samples: Array of shape (n_resamples, ...).
        confidence: Two-sided level c in (0, 1).

    Returns:
        ``(low, high)``, each of shape ``samples.shape[1:]``.

    Raises:
        ValueError: If ``confidence`` is not in (0, 1).
    """
    c = check_confidence(confidence)
    low, high = np.quantile(samples, [(1.0 - c) / 2.0, (1.0 + c) / 2.0], axis=0)
    return low, high


def bootstrap_mean_ci(
    values: np.ndarray,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """Mean of per-video values with a percentile bootstrap interval over videos.

    With ``x`` the (n, m) per-video values and ``counts`` = :func:`resample_counts`
    ``(n, n_resamples, seed)``:

    - ``estimate[j] = mean_i x[i, j]``
    - ``means[r, j] = sum_i counts[r, i] * x[i, j] / n``
    - ``low[j], high[j]`` = quantiles of ``means[:, j]`` at (1 - c) / 2 and (1 + c) / 2
      (numpy's default linear method).

    All columns use the same resamples. With ``n == 0`` every field is NaN.

    Args:
        values: Per-video values, shape (n,) or (n, m): 0/1 hits, booleans or floats.
            A 1-D input is one column (m = 1).
        n_resamples: Number of bootstrap resamples (>= 1).
        confidence: Two-sided confidence level c in (0, 1).
        seed: Seed for ``np.random.default_rng``; a rerun with the same seed gives the same
            interval.

    Returns:
        A :class:`BootstrapResult` whose ``estimate``, ``low`` and ``high`` have shape (m,).

    Raises:
        ValueError: If ``values`` is not a finite numeric (n,) or (n, m) array, or an
            argument is out of range.

    Example:
        >>> r = bootstrap_mean_ci([1, 0, 1, 1], n_resamples=200, seed=1)
        >>> float(r.estimate[0]), bool(r.low[0] <= 0.75 <= r.high[0])
        (0.75, True)
    """
    matrix, _ = as_value_matrix(values)
    c = check_confidence(confidence)
    check_resample_args(matrix.shape[0], n_resamples, seed)
    n, m = matrix.shape
    if n == 0:
        nan = np.full(m, math.nan)
        return BootstrapResult(nan, nan.copy(), nan.copy(), 0, n_resamples, c)
    means = resampled_means(matrix, n_resamples, seed)
    low, high = percentile_interval(means, c)
    return BootstrapResult(matrix.mean(axis=0), low, high, n, n_resamples, c)


if __name__ == "__main__":
    import time

    n_videos, n_cols = 20_000, 3
    hits = np.random.default_rng(1).random((n_videos, n_cols)) < 0.7
    for run in range(3):
        t0 = time.perf_counter()
        bootstrap_mean_ci(hits, n_resamples=1000, seed=run)
        print(
            f"bootstrap_mean_ci n={n_videos} m={n_cols} 1000 resamples: "
            f"{time.perf_counter() - t0:.3f} s (run {run + 1})"
        )
