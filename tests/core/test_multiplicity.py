"""Holm and Benjamini-Hochberg adjusted p-values against hand-computed cases and references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluator.core.multiplicity import adjust_p_values, benjamini_hochberg, holm


def naive_holm(p: list[float]) -> list[float]:
    """Holm by its definition: adj_(i) = max over j <= i of min(1, (m - j + 1) p_(j))."""
    m = len(p)
    order = sorted(range(m), key=lambda i: (p[i], i))
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order, start=1):
        running = max(running, min(1.0, (m - rank + 1) * p[i]))
        out[i] = running
    return out


def naive_bh(p: list[float]) -> list[float]:
    """BH by its definition: adj_(i) = min over j >= i of min(1, m p_(j) / j)."""
    m = len(p)
    order = sorted(range(m), key=lambda i: (p[i], i))
    out = [0.0] * m
    for pos, i in enumerate(order):
        out[i] = min(min(1.0, m * p[order[j]] / (j + 1)) for j in range(pos, m))
    return out


# (p-values, Holm, BH), worked by hand.
CASES = [
    ([0.01, 0.04, 0.03, 0.005], [0.03, 0.06, 0.06, 0.02], [0.02, 0.04, 0.04, 0.02]),
    ([0.5], [0.5], [0.5]),
    ([0.02, 0.02], [0.04, 0.04], [0.02, 0.02]),
    ([0.9, 0.6, 0.001], [1.0, 1.0, 0.003], [0.9, 0.9, 0.003]),
    # Holm: 0.01 * 5 = 0.05 exactly on alpha; BH: 0.04 * 5 / 4 = 0.05.
    ([0.01, 0.04, 0.04, 0.04, 0.2], [0.05, 0.16, 0.16, 0.16, 0.2], [0.05, 0.05, 0.05, 0.05, 0.2]),
]


@pytest.mark.parametrize(("p", "expected_holm", "expected_bh"), CASES)
def test_hand_computed_cases(p, expected_holm, expected_bh) -> None:
    np.testing.assert_allclose(holm(np.array(p)), expected_holm, rtol=0, atol=1e-15)
    np.testing.assert_allclose(benjamini_hochberg(np.array(p)), expected_bh, rtol=0, atol=1e-15)


def test_bh_rejects_more_than_holm_when_several_slices_changed() -> None:
    p = np.array([0.01, 0.02, 0.03, 0.04])
    assert (holm(p) <= 0.05).tolist() == [True, False, False, False]
    assert (benjamini_hochberg(p) <= 0.05).tolist() == [True, True, True, True]


def test_nan_is_untested_and_not_counted() -> None:
    p = np.array([np.nan, 0.01, np.nan, 0.04])
    out = holm(p)
    assert np.isnan(out[[0, 2]]).all()
    np.testing.assert_allclose(out[[1, 3]], [0.02, 0.04])
    assert np.isnan(benjamini_hochberg(np.array([np.nan]))).all()
    assert holm(np.array([])).shape == (0,)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30))
def test_against_the_definitions(p: list[float]) -> None:
    np.testing.assert_allclose(holm(np.array(p)), naive_holm(p), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(benjamini_hochberg(np.array(p)), naive_bh(p), rtol=1e-12, atol=1e-15)


def test_bh_equals_scipy() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(4)
    for m in (1, 2, 10, 57):
        p = rng.random(m) ** 3
        np.testing.assert_allclose(
            benjamini_hochberg(p), scipy_stats.false_discovery_control(p, method="bh"), rtol=1e-12
        )


def test_against_statsmodels_when_installed() -> None:
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    p = np.random.default_rng(5).random(25) ** 2
    for method, ours in (("holm", holm), ("fdr_bh", benjamini_hochberg)):
        np.testing.assert_allclose(ours(p), multitest.multipletests(p, method=method)[1])


@pytest.mark.parametrize(
    ("p", "method", "message"),
    [
        ([0.1, 1.5], "holm", r"\[0, 1\]"),
        ([-0.1], "bh", r"\[0, 1\]"),
        ([[0.1]], "holm", "1-D"),
        ([0.1], "bonferroni", "unknown p-value adjustment"),
    ],
)
def test_bad_input(p, method, message) -> None:
    with pytest.raises(ValueError, match=message):
        adjust_p_values(np.array(p), method)
