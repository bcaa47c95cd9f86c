"""Per-slice metrics against naive references; binning, assignment and metric keys."""

from __future__ import annotations

import math

import numpy as np
import pytest
from mlflow.utils.validation import _validate_metric_name

from evaluator.core.bootstrap import bootstrap_mean_ci
from evaluator.core.episode import coverage_at_accuracy, group_breakdown
from evaluator.core.episode_inputs import episode_videos
from evaluator.core.slices import (
    MISSING,
    assign_slices,
    bin_codes,
    episode_slice_metrics,
    metric_key_segments,
    poster_slice_metrics,
    slice_intervals,
    slice_metric_keys,
)


def naive_poster(rank: list[int], groups: list[int], g: int, k_max: int) -> tuple:
    """recall@k and MRR per slice with plain loops, straight from docs/metrics.md#poster-metrics."""
    n = [0] * g
    hits = [[0] * k_max for _ in range(g)]
    rr = [0.0] * g
    for r, grp in zip(rank, groups, strict=True):
        n[grp] += 1
        for k in range(1, k_max + 1):
            if 1 <= r <= k:
                hits[grp][k - 1] += 1
        if 1 <= r <= k_max:
            rr[grp] += 1.0 / r
    recall = [[h / n[i] if n[i] else math.nan for h in hits[i]] for i in range(g)]
    return n, recall, [rr[i] / n[i] if n[i] else math.nan for i in range(g)]


@pytest.mark.parametrize("seed", range(6))
def test_poster_slice_metrics_equal_a_naive_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k_max = int(rng.integers(1, 12))
    # Slice sizes straddle min_videos = 30 (29, 30, 31, ...), ranks straddle k_max.
    sizes = rng.choice([0, 1, 29, 30, 31, 57], size=int(rng.integers(1, 7)))
    groups = np.repeat(np.arange(sizes.shape[0]), sizes)
    rng.shuffle(groups)
    rank = rng.integers(0, k_max + 3, size=groups.shape[0])
    m = poster_slice_metrics(rank, groups, sizes.shape[0], k_max)
    n, recall, mrr = naive_poster(rank.tolist(), groups.tolist(), sizes.shape[0], k_max)
    assert m.n_videos.tolist() == n == sizes.tolist()
    np.testing.assert_allclose(m.recall, np.array(recall), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(m.mrr, mrr, rtol=1e-12, equal_nan=True)
    assert int(m.n_videos.sum()) == groups.shape[0]  # the slices add up to the whole


def test_a_slice_holding_every_video_reproduces_the_whole_set() -> None:
    rng = np.random.default_rng(1)
    rank = rng.integers(0, 12, 500)
    m = poster_slice_metrics(rank, np.zeros(500, np.int64), 1, 10)
    hits = (rank >= 1) & (rank <= 10)
    assert m.recall[0, 9] == hits.mean()
    low, high = slice_intervals(
        hits, np.zeros(500, np.int64), 1, n_resamples=300, confidence=0.9, seed=7
    )
    whole = bootstrap_mean_ci(hits.astype(float), n_resamples=300, confidence=0.9, seed=7)
    assert (low[0], high[0]) == (whole.low[0], whole.high[0])


def test_slice_intervals_resample_each_slice_alone() -> None:
    rng = np.random.default_rng(2)
    values = (rng.random(200) < 0.6).astype(float)
    codes = rng.integers(0, 3, 200)
    low, high = slice_intervals(values, codes, 4, n_resamples=200, confidence=0.95, seed=3)
    for g in range(3):
        ref = bootstrap_mean_ci(values[codes == g], n_resamples=200, confidence=0.95, seed=3)
        assert (low[g], high[g]) == (ref.low[0], ref.high[0])
    assert np.isnan(low[3]) and np.isnan(high[3])  # an empty slice has no interval


def test_bins_are_left_closed_and_the_last_finite_edge_is_included() -> None:
    values = np.array([0.0, 599.999, 600.0, 1799.0, 1800.0, np.nan, -1.0, 1800.5])
    codes, labels, segments, outside = bin_codes(values, [0, 600, 1800])
    assert codes.tolist() == [0, 0, 1, 1, 1, -1, -1, -1]
    assert labels == ("[0, 600)", "[600, 1800]")
    assert segments == ("0-600", "600-1800")
    assert outside.tolist() == [False] * 6 + [True, True]  # NaN is "no value", not outside
    codes, labels, _, outside = bin_codes(values, [-math.inf, 600, math.inf])
    assert codes.tolist() == [0, 0, 1, 1, 1, -1, 0, 1] and not outside.any()
    assert labels == ("[-inf, 600)", "[600, inf)")


@pytest.mark.parametrize("edges", [[0], [0, 0], [5, 1], [0, float("nan")]])
def test_bad_bin_edges(edges) -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        bin_codes(np.array([1.0]), edges)


def test_assignment_counts_missing_and_unmatched_videos() -> None:
    meta_ids = np.array(["b", "a", "z", "c"], dtype=object)
    genre = np.array([1, 0, 2, -1])  # c has no genre; z is not evaluated
    a = assign_slices(
        np.array(["a", "b", "c", "d"], dtype=object),
        meta_ids,
        ["genre"],
        [genre],
        [("anime", "drama", "news")],
        [None],
    )
    # news (only z) is dropped; c (null) and d (no row) form (missing).
    assert a.values == (("anime", "drama", MISSING),)
    assert a.codes[:, 0].tolist() == [0, 1, 2, 2]
    assert a.n_missing == (2,) and a.n_unmatched == 1
    assert a.segments == (("anime", "drama", "_missing_"),)


VALUES = ["드라마", "Action & Adventure", "SF/Fantasy", "a/b", "a_b", "..", ".", " x ", "", "e:f"]


def test_metric_keys_are_valid_mlflow_names_and_one_to_one() -> None:
    keys = slice_metric_keys("장르 / genre", VALUES)
    assert len(set(keys)) == len(keys)
    for key in keys:
        for suffix in ("recall_at_10", "delta_recall_at_10", "coverage_at_accuracy_0.99"):
            _validate_metric_name(f"{key}/{suffix}")  # raises on a name MLflow refuses
    assert keys[0] == "slice/장르 _ genre/드라마"
    assert keys[1] == "slice/장르 _ genre/Action _ Adventure"
    # "a/b" and "a_b" would collide: both get their digest, in any order.
    assert keys[3] != keys[4] and keys[3].startswith("slice/장르 _ genre/a_b-")
    assert metric_key_segments(["a_b", "a/b"]) == metric_key_segments(["a/b", "a_b"])[::-1]


def test_long_values_are_cut_with_a_digest() -> None:
    long = ["x" * 300, "x" * 299 + "y"]
    segs = metric_key_segments(long)
    assert len(set(segs)) == 2 and all(len(s) <= 140 for s in segs)
    _validate_metric_name(f"{slice_metric_keys('c' * 100, long)[0]}/p_regression_adjusted")


@pytest.mark.parametrize("seed", range(4))
def test_episode_slice_metrics_equal_the_whole_set_rule_per_slice(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    meta = rng.integers(1, 6, n)
    true = np.where(rng.random(n) < 0.2, rng.integers(1, 6, n), meta)
    pred = np.where(rng.random(n) < 0.8, true, rng.integers(1, 6, n))
    conf = np.round(rng.random(n), 1)  # many ties, and values exactly on the threshold
    codes = rng.integers(0, 4, n)
    v = episode_videos(meta, pred, true, conf)
    m = episode_slice_metrics(v, codes, 4, threshold=0.5, target=0.9)
    ref = group_breakdown(meta, pred, true, conf, codes, threshold=0.5)
    np.testing.assert_allclose(m.episode_accuracy, ref.episode_accuracy)
    np.testing.assert_allclose(m.mismatch_precision, ref.mismatch_precision)
    np.testing.assert_allclose(m.mismatch_recall, ref.mismatch_recall)
    np.testing.assert_allclose(m.coverage, ref.coverage)
    np.testing.assert_allclose(m.auto_accuracy, ref.auto_accuracy, equal_nan=True)
    for g in range(4):
        s = codes == g
        whole = coverage_at_accuracy(meta[s], pred[s], true[s], conf[s], target=0.9, n_resamples=1)
        assert m.coverage_at_accuracy[g] == whole.coverage
