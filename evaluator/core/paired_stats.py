"""Paired comparison of two models on the same videos (the promotion rule: `promotion_decision`).

The candidate and the champion are scored on the same videos, so their per-video results are
paired: the bootstrap resamples videos jointly (one set of counts for both models) and the
interval is of the difference, which is far narrower than two separate intervals when the
models agree on most videos. For 0/1 hits, the exact McNemar test on the discordant videos is
reported beside it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from evaluator.core.bootstrap import (
    as_value_matrix,
    check_confidence,
    check_resample_args,
    percentile_interval,
    resampled_means,
)

__all__ = [
    "CHANGES",
    "Alignment",
    "PairedDelta",
    "SweepDelta",
    "align_videos",
    "change_labels",
    "diff_order",
    "log_half_binomial_cdf",
    "mcnemar_exact",
    "paired_delta",
    "poster_video_values",
    "sweep_delta",
]


def _check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value}")
    return int(value)


def mcnemar_exact(n_gained: int, n_lost: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pair counts.

    With b = ``n_gained``, c = ``n_lost``, N = b + c, k = min(b, c) and X ~ Binomial(N, 1/2):
    ``p = min(1, 2 * P(X <= k))``, which is the two-sided exact binomial test of k successes
    in N trials at p = 0.5. ``P(X <= k) = 2**-N * sum_{i<=k} C(N, i)`` is summed in log
    space without a loop, so it stays accurate (relative error about 1e-12, checked against
    scipy.stats.binomtest) for counts in the thousands and beyond; p-values below about
    1e-308 underflow to 0.0.

    Args:
        n_gained: Videos the candidate gets right and the champion wrong (b).
        n_lost: Videos the candidate gets wrong and the champion right (c).

    Returns:
        The p-value in [0, 1]; 1.0 when b + c == 0.

    Raises:
        ValueError: If a count is not a non-negative integer.

    Example:
        >>> round(mcnemar_exact(1, 9), 6)
        0.021484
    """
    b = _check_count("n_gained", n_gained)
    c = _check_count("n_lost", n_lost)
    total = b + c
    k = min(b, c)
    if 2 * k >= total - 1:
        # k is the median or next to it: P(X <= k) >= 1/2 by symmetry.
        return 1.0
    # log C(N, i) for i = 0..k as a running sum of log((N - i + 1) / i).
    return min(1.0, 2.0 * math.exp(log_half_binomial_cdf(k, total)))


def log_half_binomial_cdf(k: int, total: int) -> float:
    """``log P(X <= k)`` for X ~ Binomial(total, 1/2), for ``0 <= k < total / 2``.

    ``P(X <= k) = 2**-N * sum_{i<=k} C(N, i)``, summed in log space without a loop (see
    :func:`mcnemar_exact`).
    """
    i = np.arange(1, k + 1, dtype=np.float64)
    log_comb = np.concatenate(([0.0], np.cumsum(np.log(total - i + 1.0) - np.log(i))))
    top = log_comb[-1]  # C(N, i) increases in i for i <= k < N / 2
    return top + math.log(np.exp(log_comb - top).sum()) - total * math.log(2.0)


@dataclass(frozen=True, eq=False)
class PairedDelta:
    """Paired difference candidate - base per column, with bootstrap intervals.

    Attributes:
        cand_mean: ``mean(cand)`` per column, shape (m,).
        base_mean: ``mean(base)`` per column, shape (m,).
        delta: ``cand_mean - base_mean`` per column, shape (m,).
        ci_low: Lower end of the two-sided percentile interval of the paired bootstrap, (m,).
        ci_high: Upper end of that interval, (m,).
        lower_bound: One-sided (1 - alpha) lower bound, the alpha quantile of the resampled
            deltas, shape (m,); None when no ``one_sided_alpha`` was given.
        n_gained: Videos with cand = 1 and base = 0, per column, as float; NaN for a column
            whose values are not all 0/1 in both inputs.
        n_lost: Videos with cand = 0 and base = 1, per column; NaN for a non-binary column.
        mcnemar_p: :func:`mcnemar_exact` of (n_gained, n_lost); NaN for a non-binary column.
        n: Number of videos.
        n_resamples: Number of bootstrap resamples.
        confidence: Two-sided level of ``[ci_low, ci_high]``.
        one_sided_alpha: Alpha of ``lower_bound``, or None.
    """

    cand_mean: np.ndarray
    base_mean: np.ndarray
    delta: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    lower_bound: np.ndarray | None
    n_gained: np.ndarray
    n_lost: np.ndarray
    mcnemar_p: np.ndarray
    n: int
    n_resamples: int
    confidence: float
    one_sided_alpha: float | None


def paired_delta(
    cand: np.ndarray,
    base: np.ndarray,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    one_sided_alpha: float | None = None,
) -> PairedDelta:
    """Paired bootstrap of the difference of per-video means, candidate minus base.

    With ``d[i, j] = cand[i, j] - base[i, j]`` and ``counts`` = ``resample_counts(n,
    n_resamples, seed)`` (videos resampled jointly, the same counts for both models):

    - ``delta[j] = mean_i cand[i, j] - mean_i base[i, j]``
    - ``deltas[r, j] = sum_i counts[r, i] * d[i, j] / n``
    - ``ci_low, ci_high`` = quantiles of ``deltas`` at (1 - c) / 2 and (1 + c) / 2
    - ``lower_bound`` = quantile of ``deltas`` at alpha (one-sided (1 - alpha) bound).

    For a column where both inputs are all 0/1 (booleans included): ``n_gained = #(cand = 1,
    base = 0)``, ``n_lost = #(cand = 0, base = 1)`` and ``mcnemar_p`` = the exact McNemar
    p-value. Any other column gets NaN in those three fields.

    Args:
        cand: Candidate per-video values, shape (n,) or (n, m).
        base: Baseline (champion) per-video values, same shape and the same video order.
        n_resamples: Number of bootstrap resamples (>= 1).
        confidence: Two-sided confidence level c in (0, 1).
        seed: Seed for ``np.random.default_rng``.
        one_sided_alpha: When given, alpha in (0, 1) of the one-sided lower bound.

    Returns:
        A :class:`PairedDelta` whose arrays have shape (m,) (m = 1 for 1-D inputs).

    Raises:
        ValueError: If the inputs differ in shape, are empty, are not finite numeric (n,)
            or (n, m) arrays, or an argument is out of range.
    """
    cand_m, _ = as_value_matrix(cand, "cand")
    base_m, _ = as_value_matrix(base, "base")
    if cand_m.shape != base_m.shape:
        raise ValueError(
            "cand and base must have the same shape (videos aligned), got "
            f"{np.shape(cand)} and {np.shape(base)}"
        )
    n = cand_m.shape[0]
    if n == 0:
        raise ValueError("cand and base hold no videos; a paired comparison needs at least one")
    c = check_confidence(confidence)
    alpha = None
    if one_sided_alpha is not None:
        alpha = check_confidence(one_sided_alpha, "one_sided_alpha")
    check_resample_args(n, n_resamples, seed)

    diff = cand_m - base_m
    deltas = resampled_means(diff, n_resamples, seed)
    ci_low, ci_high = percentile_interval(deltas, c)
    lower = None if alpha is None else np.quantile(deltas, alpha, axis=0)

    binary = np.all((cand_m == 0) | (cand_m == 1), axis=0) & np.all(
        (base_m == 0) | (base_m == 1), axis=0
    )
    gained = np.where(binary, np.sum((cand_m == 1) & (base_m == 0), axis=0), np.nan)
    lost = np.where(binary, np.sum((cand_m == 0) & (base_m == 1), axis=0), np.nan)
    # One scalar test per metric column (a handful), not per video.
    p_values = np.array(
        [
            mcnemar_exact(int(g), int(lo)) if ok else math.nan
            for g, lo, ok in zip(gained, lost, binary, strict=True)
        ],
        dtype=np.float64,
    )
    cand_mean, base_mean = cand_m.mean(axis=0), base_m.mean(axis=0)
    return PairedDelta(
        cand_mean=cand_mean,
        base_mean=base_mean,
        delta=cand_mean - base_mean,
        ci_low=ci_low,
        ci_high=ci_high,
        lower_bound=lower,
        n_gained=gained.astype(np.float64),
        n_lost=lost.astype(np.float64),
        mcnemar_p=p_values,
        n=n,
        n_resamples=n_resamples,
        confidence=c,
        one_sided_alpha=alpha,
    )


# ----------------------------------------------------------------------------- alignment


@dataclass(frozen=True, eq=False)
class Alignment:
    """The videos two evaluations have in common, and where each sits in its own table.

    Attributes:
        video_ids: The common video ids, sorted, shape (n,).
        cand_index: Row of each common video in the candidate's arrays, shape (n,).
        base_index: Row of each common video in the baseline's arrays, shape (n,).
        n_only_candidate: Videos only the candidate has.
        n_only_baseline: Videos only the baseline has.
    """

    video_ids: np.ndarray
    cand_index: np.ndarray
    base_index: np.ndarray
    n_only_candidate: int
    n_only_baseline: int


def _unique_ids(ids: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(ids).astype(str)
    if values.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of video ids, got shape {values.shape}")
    uniq, counts = np.unique(values, return_counts=True)
    if uniq.shape[0] != values.shape[0]:
        dup = uniq[counts > 1][:5].tolist()
        raise ValueError(f"{name} holds duplicate video ids, e.g. {dup}")
    return values


def align_videos(cand_ids: np.ndarray, base_ids: np.ndarray) -> Alignment:
    """Pair the rows of two per-video tables by video id (compared as text).

    Args:
        cand_ids: Video ids of the candidate's rows (unique).
        base_ids: Video ids of the baseline's rows (unique).

    Returns:
        An :class:`Alignment` over the ids both have, sorted.

    Raises:
        ValueError: If an input is not 1-D or holds duplicate ids.

    Example:
        >>> a = align_videos(np.array(["b", "a", "c"]), np.array(["c", "b", "d"]))
        >>> a.video_ids.tolist(), a.cand_index.tolist(), a.base_index.tolist()
        (['b', 'c'], [0, 2], [1, 0])
    """
    cand = _unique_ids(cand_ids, "cand_ids")
    base = _unique_ids(base_ids, "base_ids")
    common, ci, bi = np.intersect1d(cand, base, assume_unique=True, return_indices=True)
    return Alignment(
        video_ids=common,
        cand_index=ci.astype(np.int64),
        base_index=bi.astype(np.int64),
        n_only_candidate=int(cand.shape[0] - common.shape[0]),
        n_only_baseline=int(base.shape[0] - common.shape[0]),
    )


_RECALL = re.compile(r"recall_at_([1-9][0-9]*)")
_MRR = re.compile(r"mrr_at_([1-9][0-9]*)")


def poster_video_values(first_hit_rank: np.ndarray, metric: str, k_max: int) -> np.ndarray:
    """Per-video values of a poster metric, whose mean is the metric
    (docs/metrics.md#poster-metrics).

    With ``r`` = rank of the first matching model frame (0 = miss):

    - ``recall_at_{k}``: ``1.0 if 1 <= r <= k else 0.0`` (the seed's TOP-k recall),
    - ``mrr_at_{k}``: ``1 / r if 1 <= r <= k else 0.0``,

    for ``1 <= k <= k_max``.

    Args:
        first_hit_rank: Rank of the first hit per video, 0 for a miss, shape (n,).
        metric: ``recall_at_{k}`` or ``mrr_at_{k}``.
        k_max: The evaluation's ``metrics.k_max`` (no rank beyond it was considered).

    Returns:
        float64 values, shape (n,).

    Raises:
        ValueError: If the metric is not one of those, or k exceeds k_max.

    Example:
        >>> poster_video_values(np.array([0, 1, 3, 7]), "recall_at_5", 10).tolist()
        [0.0, 1.0, 1.0, 0.0]
        >>> poster_video_values(np.array([0, 1, 4]), "mrr_at_10", 10).tolist()
        [0.0, 1.0, 0.25]
    """
    rank = np.asarray(first_hit_rank)
    if rank.ndim != 1 or (rank.size and not np.issubdtype(rank.dtype, np.integer)):
        raise ValueError(
            f"first_hit_rank must be a 1-D integer array, got {rank.dtype} {rank.shape}"
        )
    recall, mrr = _RECALL.fullmatch(metric), _MRR.fullmatch(metric)
    match = recall or mrr
    if match is None:
        raise ValueError(
            f"no per-video values for metric {metric!r}: use recall_at_{{k}} or mrr_at_{{k}} "
            f"with 1 <= k <= {k_max}"
        )
    k = int(match.group(1))
    if k > k_max:
        raise ValueError(f"{metric}: k = {k} exceeds the evaluation's k_max = {k_max}")
    hit = (rank >= 1) & (rank <= k)
    if recall is not None:
        return hit.astype(np.float64)
    return np.where(hit, 1.0 / np.maximum(rank, 1), 0.0)


# ----------------------------------------------------------------------------- per-video changes

GAINED, LOST, SAME = "gained", "lost", "same"
CHANGES = (GAINED, LOST, SAME)


def change_labels(cand_hit: np.ndarray, base_hit: np.ndarray) -> np.ndarray:
    """``gained`` (cand hit, base miss), ``lost`` (cand miss, base hit) or ``same`` per video.

    Args:
        cand_hit: Candidate hit flags, shape (n,).
        base_hit: Baseline hit flags, shape (n,), same video order.

    Returns:
        An object array of labels, shape (n,).

    Raises:
        ValueError: If the shapes differ.
    """
    c = np.asarray(cand_hit, dtype=bool)
    b = np.asarray(base_hit, dtype=bool)
    if c.shape != b.shape or c.ndim != 1:
        raise ValueError(
            f"cand_hit and base_hit must be 1-D of one shape, got {c.shape} and {b.shape}"
        )
    out = np.full(c.shape, SAME, dtype=object)
    out[c & ~b] = GAINED
    out[~c & b] = LOST
    return out


def diff_order(changes: np.ndarray, video_ids: np.ndarray) -> np.ndarray:
    """Row order of a per-video difference table: gained, then lost, then same; by id within.

    Args:
        changes: Labels from :func:`change_labels`, shape (n,).
        video_ids: Video ids, shape (n,).

    Returns:
        A permutation of ``range(n)``.

    Example:
        >>> diff_order(np.array(["same", "lost", "gained", "gained"], dtype=object),
        ...            np.array(["a", "b", "d", "c"])).tolist()
        [3, 2, 1, 0]
    """
    rank = {label: i for i, label in enumerate(CHANGES)}
    group = np.array([rank[str(c)] for c in changes], dtype=np.int64)
    return np.lexsort((np.asarray(video_ids).astype(str), group))


# ----------------------------------------------------------------------------- sweep delta


@dataclass(frozen=True, eq=False)
class SweepDelta:
    """recall@k of both models over the threshold grid points both sweeps have.

    Attributes:
        time_tolerances_s: Common tau values, sorted, shape (n_tau,).
        min_cosines: Common theta values, sorted, shape (n_theta,); a single NaN when both
            sweeps are time-only.
        cand: Candidate recall, shape (n_tau, n_theta).
        base: Baseline recall, shape (n_tau, n_theta).
        delta: ``cand - base``, shape (n_tau, n_theta).
    """

    time_tolerances_s: np.ndarray
    min_cosines: np.ndarray
    cand: np.ndarray
    base: np.ndarray
    delta: np.ndarray

    @property
    def n_better(self) -> int:
        """Grid points where the candidate is strictly better."""
        return int(np.count_nonzero(self.delta > 0))

    @property
    def n_worse(self) -> int:
        """Grid points where the candidate is strictly worse."""
        return int(np.count_nonzero(self.delta < 0))


def _grid_axis(cand: np.ndarray, base: np.ndarray, name: str) -> tuple[np.ndarray, ...]:
    c = np.asarray(cand, dtype=np.float64)
    b = np.asarray(base, dtype=np.float64)
    if np.isnan(c).all() and np.isnan(b).all() and c.size == 1 and b.size == 1:
        return np.array([np.nan]), np.array([0]), np.array([0])
    if np.isnan(c).any() or np.isnan(b).any():
        raise ValueError(
            f"{name}: one sweep is time-only (NaN) and the other is not; no common grid"
        )
    common, ci, bi = np.intersect1d(c, b, return_indices=True)
    return common, ci, bi


def sweep_delta(
    cand_taus: np.ndarray,
    cand_thetas: np.ndarray,
    cand_recall: np.ndarray,
    base_taus: np.ndarray,
    base_thetas: np.ndarray,
    base_recall: np.ndarray,
) -> SweepDelta:
    """Difference of recall@k (candidate - baseline) at every grid point both sweeps have.

    Grid values are matched exactly (float64 equality), as both come from the same
    configuration when the sweeps are comparable.

    Args:
        cand_taus: Candidate's tau grid (n_tau_c,), unique.
        cand_thetas: Candidate's theta grid (n_theta_c,), unique; ``[nan]`` when time-only.
        cand_recall: Candidate recall@k at (tau_i, theta_j), shape (n_tau_c, n_theta_c).
        base_taus: Baseline's tau grid.
        base_thetas: Baseline's theta grid.
        base_recall: Baseline recall, shape (n_tau_b, n_theta_b).

    Returns:
        A :class:`SweepDelta` over the common points.

    Raises:
        ValueError: If a recall array does not match its grid, or the grids share no point.
    """
    for name, taus, thetas, recall in (
        ("candidate", cand_taus, cand_thetas, cand_recall),
        ("baseline", base_taus, base_thetas, base_recall),
    ):
        shape = (np.size(taus), np.size(thetas))
        if np.shape(recall) != shape:
            raise ValueError(
                f"{name} sweep: recall has shape {np.shape(recall)}, the grid is {shape}"
            )
    taus, ti_c, ti_b = _grid_axis(cand_taus, base_taus, "time_tolerances_s")
    thetas, tj_c, tj_b = _grid_axis(cand_thetas, base_thetas, "min_cosines")
    if taus.size == 0 or thetas.size == 0:
        raise ValueError("the two sweeps have no (time tolerance, min cosine) point in common")
    c = np.asarray(cand_recall, dtype=np.float64)[np.ix_(ti_c, tj_c)]
    b = np.asarray(base_recall, dtype=np.float64)[np.ix_(ti_b, tj_b)]
    return SweepDelta(taus, thetas, c, b, c - b)
