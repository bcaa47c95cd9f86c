"""Tests of the percentile bootstrap over videos, against plain-loop references."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluator.core.bootstrap import bootstrap_mean_ci, resample_counts


def naive_counts(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """One explicit draw of n video indices per resample, counted."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_resamples):
        drawn = rng.integers(0, n, size=n)
        row = [0] * n
        for i in drawn:
            row[i] += 1
        rows.append(row)
    return np.array(rows, dtype=np.int64)


def naive_mean_ci(
    values: np.ndarray, counts: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resample by materialising each resample's videos, then take percentiles."""
    x = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    means = []
    for row in counts:
        chosen = np.repeat(np.arange(len(x)), row)
        means.append(x[chosen].mean(axis=0))
    means = np.array(means)
    low = np.quantile(means, (1 - confidence) / 2, axis=0)
    high = np.quantile(means, (1 + confidence) / 2, axis=0)
    return x.mean(axis=0), low, high


@pytest.mark.parametrize(("n", "n_resamples"), [(1, 5), (7, 40), (300, 50), (50_000, 45)])
def test_resample_counts_are_draws_with_replacement(n: int, n_resamples: int) -> None:
    counts = resample_counts(n, n_resamples, seed=3)
    assert counts.shape == (n_resamples, n)
    assert counts.dtype == np.int64
    assert (counts.sum(axis=1) == n).all()
    # (50_000, 45) spans several internal blocks; the blocks must join seamlessly.
    np.testing.assert_array_equal(counts, naive_counts(n, n_resamples, seed=3))


def test_resample_counts_deterministic_per_seed() -> None:
    np.testing.assert_array_equal(resample_counts(50, 20, 7), resample_counts(50, 20, 7))
    assert not np.array_equal(resample_counts(50, 20, 7), resample_counts(50, 20, 8))


def test_resample_counts_marginals() -> None:
    # Each count is Binomial(n, 1/n): mean 1, variance 1 - 1/n.
    counts = resample_counts(200, 2000, seed=0)
    assert abs(counts.mean() - 1.0) < 1e-12
    assert abs(counts.var() - (1 - 1 / 200)) < 0.02


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bootstrap_equals_naive_loop_for_hits(seed: int) -> None:
    rng = np.random.default_rng(seed)
    hits = (rng.random((137, 3)) < [0.2, 0.5, 0.9]).astype(np.int64)
    result = bootstrap_mean_ci(hits, n_resamples=300, confidence=0.9, seed=seed)
    estimate, low, high = naive_mean_ci(hits, resample_counts(137, 300, seed), 0.9)
    # 0/1 sums are exact integers, so both routes give bit-identical means.
    np.testing.assert_array_equal(result.estimate, estimate)
    np.testing.assert_array_equal(result.low, low)
    np.testing.assert_array_equal(result.high, high)
    assert (result.n, result.n_resamples, result.confidence) == (137, 300, 0.9)


def test_bootstrap_equals_naive_loop_for_floats() -> None:
    values = np.random.default_rng(5).normal(size=(61, 2))
    result = bootstrap_mean_ci(values, n_resamples=200, seed=11)
    estimate, low, high = naive_mean_ci(values, resample_counts(61, 200, 11), 0.95)
    np.testing.assert_allclose(result.estimate, estimate, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(result.low, low, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(result.high, high, rtol=1e-12, atol=1e-15)


def test_columns_share_resamples_and_one_d_is_one_column() -> None:
    x = np.random.default_rng(2).random(80) < 0.4
    both = bootstrap_mean_ci(np.column_stack([x, x]), n_resamples=100, seed=4)
    single = bootstrap_mean_ci(x, n_resamples=100, seed=4)
    assert single.estimate.shape == (1,)
    np.testing.assert_array_equal(both.low, [single.low[0]] * 2)
    np.testing.assert_array_equal(both.high, [single.high[0]] * 2)


def test_deterministic_per_seed() -> None:
    x = np.random.default_rng(0).random((90, 2)) < 0.5
    a = bootstrap_mean_ci(x, n_resamples=200, seed=9)
    b = bootstrap_mean_ci(x, n_resamples=200, seed=9)
    c = bootstrap_mean_ci(x, n_resamples=200, seed=10)
    np.testing.assert_array_equal(a.low, b.low)
    np.testing.assert_array_equal(a.high, b.high)
    assert not (np.array_equal(a.low, c.low) and np.array_equal(a.high, c.high))


@pytest.mark.parametrize("shape", [(0,), (0, 3)])
def test_no_videos_gives_nan(shape: tuple[int, ...]) -> None:
    result = bootstrap_mean_ci(np.zeros(shape), n_resamples=10)
    m = 1 if len(shape) == 1 else shape[1]
    for field in (result.estimate, result.low, result.high):
        assert field.shape == (m,)
        assert np.isnan(field).all()


@functools.cache
def coverage_rate(p: float) -> float:
    """Share of 300 simulated test sets (n = 400, hit rate p) whose 95 % interval holds p."""
    n, n_trials, per_call = 400, 300, 30
    rng = np.random.default_rng(int(p * 100))
    covered = 0
    for block in range(n_trials // per_call):
        # Columns are independent test sets; each block gets its own resamples.
        hits = rng.random((n, per_call)) < p
        r = bootstrap_mean_ci(hits, n_resamples=1000, seed=block)
        covered += int(np.sum((r.low <= p) & (p <= r.high)))
    return covered / n_trials


@pytest.mark.parametrize("p", [0.3, 0.6, 0.85])
def test_coverage_of_true_hit_rate(p: float) -> None:
    """The 95 % interval holds the true hit rate in about 95 % of simulated test sets."""
    # Binomial SD at 0.95 over 300 trials is 0.0126; a 99 % interval fails the upper bound.
    assert 0.91 <= coverage_rate(p) <= 0.98, coverage_rate(p)


def test_pooled_coverage_is_95_percent() -> None:
    # 900 trials: SD 0.0073. A 90 % interval (about 0.92 here) fails the lower bound.
    pooled = np.mean([coverage_rate(p) for p in (0.3, 0.6, 0.85)])
    assert 0.93 <= pooled <= 0.975, pooled


def test_interval_narrows_as_n_grows() -> None:
    rng = np.random.default_rng(1)
    widths = []
    for n in (100, 400, 1600, 6400):
        r = bootstrap_mean_ci(rng.random(n) < 0.5, n_resamples=1000, seed=0)
        widths.append(float(r.high[0] - r.low[0]))
    assert widths == sorted(widths, reverse=True)
    # Width scales as 1 / sqrt(n): quadrupling n about halves it.
    ratios = np.array(widths[:-1]) / np.array(widths[1:])
    assert ((ratios > 1.6) & (ratios < 2.5)).all(), ratios


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=40),
    confidence=st.floats(0.5, 0.99),
    seed=st.integers(0, 1000),
)
def test_interval_is_ordered_and_inside_the_data(
    values: list[float], confidence: float, seed: int
) -> None:
    r = bootstrap_mean_ci(np.array(values), n_resamples=50, confidence=confidence, seed=seed)
    tol = 1e-12
    assert r.low[0] <= r.high[0] + tol
    assert min(values) - tol <= r.low[0] and r.high[0] <= max(values) + tol


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"values": np.zeros((2, 2, 2))}, r"shape \(n,\) or \(n, m\)"),
        ({"values": np.array(["a", "b"])}, "numeric or boolean"),
        ({"values": np.array([0.0, np.nan, 1.0])}, r"finite; NaN or inf in rows \[1\]"),
        ({"values": np.ones(3), "confidence": 0.0}, r"confidence must be in \(0, 1\)"),
        ({"values": np.ones(3), "confidence": 1.0}, r"confidence must be in \(0, 1\)"),
        ({"values": np.ones(3), "confidence": "95%"}, "confidence must be a number"),
        ({"values": np.ones(3), "n_resamples": 0}, "n_resamples must be >= 1"),
        ({"values": np.ones(3), "n_resamples": 10.5}, "n_resamples must be an integer"),
        ({"values": np.ones(3), "seed": -1}, "seed must be >= 0"),
    ],
)
def test_bad_input(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bootstrap_mean_ci(**kwargs)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1, 10, 0), "n must be >= 0"),
        ((5, 0, 0), "n_resamples must be >= 1"),
        ((5, 10, True), "seed must be an integer"),
    ],
)
def test_resample_counts_bad_input(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resample_counts(*args)


def test_docstring_examples() -> None:
    import doctest

    import evaluator.core.bootstrap as module

    assert doctest.testmod(module).failed == 0
