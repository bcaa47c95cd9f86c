"""Tests of the paired comparison and the promotion rule."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import binomtest

from evaluator.core.bootstrap import resample_counts
from evaluator.core.paired_stats import mcnemar_exact, paired_delta
from evaluator.core.promotion_decision import decide_promotion
from tests.conftest import load_script

# ----------------------------------------------------------------------------- McNemar


def exact_mcnemar(b: int, c: int) -> float:
    """min(1, 2 P(X <= min(b, c))) with X ~ Binomial(b + c, 1/2), in exact rationals."""
    total = b + c
    tail = Fraction(sum(math.comb(total, i) for i in range(min(b, c) + 1)), 2**total)
    return float(min(Fraction(1), 2 * tail))


@pytest.mark.parametrize("b", range(0, 26))
def test_mcnemar_matches_scipy_small(b: int) -> None:
    for c in range(0, 26):
        expected = 1.0 if b + c == 0 else binomtest(min(b, c), b + c, 0.5).pvalue
        assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-10, abs=0), (b, c)
        assert mcnemar_exact(b, c) == pytest.approx(exact_mcnemar(b, c), rel=1e-12, abs=0)


def test_mcnemar_matches_scipy_large() -> None:
    rng = np.random.default_rng(0)
    pairs = [(int(b), int(c)) for b, c in rng.integers(0, 5000, size=(60, 2))]
    pairs += [(1500, 1600), (2000, 2150), (4321, 4500), (3000, 3000), (0, 4000), (5, 4000)]
    for b, c in pairs:
        expected = binomtest(min(b, c), b + c, 0.5).pvalue
        got = mcnemar_exact(b, c)
        if expected < 1e-300:
            assert got < 1e-300, (b, c, got)
        else:
            assert got == pytest.approx(expected, rel=1e-9, abs=0), (b, c, got, expected)


def test_mcnemar_hand_cases() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(3, 4) == 1.0
    assert mcnemar_exact(0, 1) == 1.0
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32, rel=1e-13)
    assert mcnemar_exact(9, 1) == mcnemar_exact(1, 9)
    assert mcnemar_exact(1, 9) == pytest.approx(2 * 11 / 1024, rel=1e-13)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1, 3), "n_gained must be a non-negative integer"),
        ((1, 2.0), "n_lost must be a non-negative integer"),
        ((True, 2), "n_gained must be a non-negative integer"),
    ],
)
def test_mcnemar_bad_input(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mcnemar_exact(*args)


# ----------------------------------------------------------------------------- paired delta


def naive_paired(cand: np.ndarray, base: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Resampled mean paired differences, materialising each resample's videos."""
    c = np.asarray(cand, dtype=np.float64).reshape(len(cand), -1)
    b = np.asarray(base, dtype=np.float64).reshape(len(base), -1)
    rows = []
    for row in counts:
        chosen = np.repeat(np.arange(len(c)), row)
        rows.append((c[chosen] - b[chosen]).mean(axis=0))
    return np.array(rows)


@pytest.mark.parametrize("seed", [0, 1])
def test_paired_delta_equals_naive_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    base = (rng.random((151, 2)) < 0.6).astype(int)
    cand = np.where(rng.random((151, 2)) < 0.15, 1 - base, base)
    r = paired_delta(cand, base, n_resamples=400, seed=seed, one_sided_alpha=0.05)
    deltas = naive_paired(cand, base, resample_counts(151, 400, seed))
    np.testing.assert_array_equal(r.ci_low, np.quantile(deltas, 0.025, axis=0))
    np.testing.assert_array_equal(r.ci_high, np.quantile(deltas, 0.975, axis=0))
    np.testing.assert_array_equal(r.lower_bound, np.quantile(deltas, 0.05, axis=0))
    np.testing.assert_array_equal(r.delta, cand.mean(axis=0) - base.mean(axis=0))
    np.testing.assert_array_equal(r.cand_mean, cand.mean(axis=0))
    np.testing.assert_array_equal(r.base_mean, base.mean(axis=0))
    gained = ((cand == 1) & (base == 0)).sum(axis=0)
    lost = ((cand == 0) & (base == 1)).sum(axis=0)
    np.testing.assert_array_equal(r.n_gained, gained)
    np.testing.assert_array_equal(r.n_lost, lost)
    expected_p = [
        binomtest(min(g, lo), g + lo, 0.5).pvalue for g, lo in zip(gained, lost, strict=True)
    ]
    np.testing.assert_allclose(r.mcnemar_p, expected_p, rtol=1e-10)


def test_paired_delta_floats_and_non_binary_columns() -> None:
    rng = np.random.default_rng(3)
    cand = np.column_stack([rng.random(70) < 0.5, rng.random(70)])
    base = np.column_stack([rng.random(70) < 0.5, rng.random(70)])
    r = paired_delta(cand, base, n_resamples=100, seed=2)
    deltas = naive_paired(cand, base, resample_counts(70, 100, 2))
    np.testing.assert_allclose(r.ci_low, np.quantile(deltas, 0.025, axis=0), rtol=1e-12)
    np.testing.assert_allclose(r.ci_high, np.quantile(deltas, 0.975, axis=0), rtol=1e-12)
    assert r.lower_bound is None
    assert not np.isnan(r.n_gained[0]) and not np.isnan(r.mcnemar_p[0])
    assert np.isnan(r.n_gained[1]) and np.isnan(r.n_lost[1]) and np.isnan(r.mcnemar_p[1])


def test_paired_resampling_is_joint() -> None:
    # Identical models: every resample sees the same videos for both, so delta is exactly 0.
    x = np.random.default_rng(0).random(200) < 0.7
    r = paired_delta(x, x, n_resamples=200, one_sided_alpha=0.05)
    assert (r.delta[0], r.ci_low[0], r.ci_high[0], r.lower_bound[0]) == (0, 0, 0, 0)
    assert (r.n_gained[0], r.n_lost[0], r.mcnemar_p[0]) == (0, 0, 1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cand": np.ones(3), "base": np.ones(4)}, "same shape"),
        ({"cand": np.ones(0), "base": np.ones(0)}, "no videos"),
        ({"cand": np.ones(3), "base": np.ones(3), "one_sided_alpha": 0}, "one_sided_alpha"),
        ({"cand": np.ones(3), "base": np.array([1, np.inf, 0])}, "base must be finite"),
        ({"cand": np.ones(3), "base": np.ones(3), "n_resamples": -5}, "n_resamples"),
    ],
)
def test_paired_delta_bad_input(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        paired_delta(**kwargs)


# ----------------------------------------------------------------------------- promotion rule


def test_reason_names_the_numbers() -> None:
    d = decide_promotion(
        "recall_at_10",
        has_champion=True,
        delta=0.031,
        lower_bound=0.004,
        guardrails={"recall_at_1": 0.02},
        guardrail_deltas={"recall_at_1": -0.004},
    )
    assert d.promote
    assert d.reason == (
        "recall_at_10 +0.031 (95% lower bound +0.004 > 0.000); "
        "recall_at_1 -0.004 within guardrail 0.020"
    )
    assert [c.kind for c in d.checks] == ["primary", "guardrail"]


def test_lower_bound_equal_to_min_delta_is_rejected() -> None:
    d = decide_promotion("recall_at_10", has_champion=True, delta=0.02, lower_bound=0.0)
    assert not d.promote
    assert d.reason == "recall_at_10 +0.020 (95% lower bound +0.000 <= 0.000)"
    d = decide_promotion(
        "recall_at_10", has_champion=True, delta=0.0, lower_bound=-0.25, min_delta=-0.25
    )
    assert not d.promote


def test_non_inferiority_margin() -> None:
    d = decide_promotion(
        "recall_at_10", has_champion=True, delta=0.0, lower_bound=-0.005, min_delta=-0.01
    )
    assert d.promote
    assert d.reason == "recall_at_10 +0.000 (95% lower bound -0.005 > -0.010)"


def test_guardrail_exactly_at_the_limit_is_allowed() -> None:
    common = {"has_champion": True, "delta": 0.5, "lower_bound": 0.25}
    d = decide_promotion(
        "recall_at_10",
        **common,
        guardrails={"recall_at_1": 0.25},
        guardrail_deltas={"recall_at_1": -0.25},
    )
    assert d.promote
    d = decide_promotion(
        "recall_at_10",
        **common,
        alpha=0.1,
        guardrails={"recall_at_1": 0.25, "mrr_at_10": 0.125},
        guardrail_deltas={"recall_at_1": -0.25, "mrr_at_10": -0.1875},
    )
    assert not d.promote
    assert d.reason == "mrr_at_10 -0.188 drops more than guardrail 0.125"
    assert [c.passed for c in d.checks] == [True, True, False]


def test_primary_and_guardrail_both_failing_are_both_named() -> None:
    d = decide_promotion(
        "recall_at_10",
        has_champion=True,
        delta=0.01,
        lower_bound=-0.012,
        alpha=0.025,
        guardrails={"recall_at_1": 0.02},
        guardrail_deltas={"recall_at_1": -0.031},
    )
    assert not d.promote
    assert d.reason == (
        "recall_at_10 +0.010 (97.5% lower bound -0.012 <= 0.000); "
        "recall_at_1 -0.031 drops more than guardrail 0.020"
    )


def test_floors_without_champion() -> None:
    values = {"recall_at_10": 0.75, "recall_at_1": 0.5}
    d = decide_promotion(
        "recall_at_10",
        has_champion=False,
        floors={"recall_at_10": 0.75, "recall_at_1": 0.25},
        candidate_values=values,
    )
    assert d.promote  # exactly on the floor counts as met
    assert (
        d.reason
        == "no champion; recall_at_10 0.750 >= floor 0.750; recall_at_1 0.500 >= floor 0.250"
    )
    d = decide_promotion(
        "recall_at_10", has_champion=False, floors={"recall_at_1": 0.6}, candidate_values=values
    )
    assert not d.promote
    assert d.reason == "no champion; recall_at_1 0.500 below floor 0.600"
    d = decide_promotion("recall_at_10", has_champion=False)
    assert d.promote and d.checks == ()


CHAMPION = {"has_champion": True, "delta": 0.1, "lower_bound": 0.0}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"has_champion": True, "delta": 0.1}, "delta and lower_bound of recall_at_10 are"),
        ({**CHAMPION, "lower_bound": math.nan}, "lower_bound must be a finite"),
        ({**CHAMPION, "alpha": 1.5}, r"alpha must be in \(0, 1\)"),
        ({**CHAMPION, "min_delta": None}, "min_delta must be a finite"),
        (
            {**CHAMPION, "guardrails": {"r1": -0.1}, "guardrail_deltas": {"r1": 0.0}},
            r"guardrails\['r1'\] must be >= 0",
        ),
        ({**CHAMPION, "guardrails": {"r1": 0.1}}, "guardrail metric 'r1' has no delta"),
        ({"has_champion": False, "floors": {"r1": 0.1}}, "floor metric 'r1' has no value"),
    ],
)
def test_decide_promotion_bad_input(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decide_promotion("recall_at_10", **kwargs)


# ----------------------------------------------------------------------------- the gate, simulated


SIMULATE = load_script("simulate_gate")
sigmoid = SIMULATE.sigmoid
# A coarser quadrature and bisection than the script's defaults: enough for these checks.
NODES, WEIGHTS = np.polynomial.hermite_e.hermegauss(80)


def ability_for(recall: float, spread: float) -> float:
    return SIMULATE.ability_for(recall, spread, 20.0, 100, NODES, WEIGHTS)


def promotion_rate(gain: float, n_trials: int, n_videos: int, seed: int) -> float:
    """Share of simulated trials promoted; both models share each video's difficulty."""
    spread, alpha = 1.5, 0.05
    a_champion = ability_for(0.7, spread)
    a_candidate = ability_for(0.7 + gain, spread)
    rng = np.random.default_rng(seed)
    promoted = 0
    for trial in range(n_trials):
        difficulty = rng.normal(0.0, spread, n_videos)
        base = rng.random(n_videos) < sigmoid(a_champion - difficulty)
        cand = rng.random(n_videos) < sigmoid(a_candidate - difficulty)
        r = paired_delta(cand, base, n_resamples=300, seed=trial, one_sided_alpha=alpha)
        decision = decide_promotion(
            "recall_at_10",
            has_champion=True,
            delta=float(r.delta[0]),
            lower_bound=float(r.lower_bound[0]),
            alpha=alpha,
        )
        promoted += decision.promote
    return promoted / n_trials


def test_equal_models_are_rarely_promoted() -> None:
    n_trials, alpha = 150, 0.05
    rate = promotion_rate(0.0, n_trials, n_videos=400, seed=0)
    assert rate <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / n_trials), rate


def test_a_ten_point_gain_is_promoted() -> None:
    assert promotion_rate(0.10, 60, n_videos=400, seed=1) >= 0.9


def test_docstring_examples() -> None:
    import doctest

    import evaluator.core.paired_stats as comparison
    import evaluator.core.promotion_decision as promotion

    for module in (comparison, promotion):
        assert doctest.testmod(module).failed == 0


# ------------------------------------------------------------------ alignment, sweep delta


def test_align_videos_pairs_rows_by_id() -> None:
    from evaluator.core.paired_stats import align_videos

    a = align_videos(np.array(["7", "007", "x"]), np.array(["x", "7", "y"]))
    assert a.video_ids.tolist() == ["7", "x"]
    assert a.cand_index.tolist() == [0, 2] and a.base_index.tolist() == [1, 0]
    assert (a.n_only_candidate, a.n_only_baseline) == (1, 1)
    with pytest.raises(ValueError, match="duplicate video ids"):
        align_videos(np.array(["a", "a"]), np.array(["a"]))


def test_poster_video_values_mean_is_the_metric() -> None:
    from evaluator.core.paired_stats import poster_video_values

    rng = np.random.default_rng(0)
    rank = rng.integers(0, 11, 500)
    for k in (1, 5, 10):
        expected = np.mean([(1 <= r <= k) for r in rank])
        assert poster_video_values(rank, f"recall_at_{k}", 10).mean() == expected
    mrr = np.mean([1 / r if r else 0.0 for r in rank])
    assert poster_video_values(rank, "mrr_at_10", 10).mean() == pytest.approx(mrr, rel=1e-15)
    with pytest.raises(ValueError, match="exceeds the evaluation's k_max"):
        poster_video_values(rank, "recall_at_11", 10)
    with pytest.raises(ValueError, match="no per-video values for metric 'precision_at_10'"):
        poster_video_values(rank, "precision_at_10", 10)


def test_change_labels_and_order() -> None:
    from evaluator.core.paired_stats import change_labels, diff_order

    c = np.array([1, 0, 1, 0, 1], dtype=bool)
    b = np.array([0, 1, 1, 0, 0], dtype=bool)
    labels = change_labels(c, b)
    assert labels.tolist() == ["gained", "lost", "same", "same", "gained"]
    order = diff_order(labels, np.array(["e", "d", "c", "b", "a"]))
    assert order.tolist() == [4, 0, 1, 3, 2]


def test_sweep_delta_uses_the_common_grid() -> None:
    from evaluator.core.paired_stats import sweep_delta

    c = np.arange(6, dtype=float).reshape(2, 3) / 10
    b = np.full((3, 2), 0.2)
    s = sweep_delta([0.0, 1.0], [0.1, 0.5, 0.9], c, [0.0, 1.0, 2.0], [0.5, 0.9], b)
    assert s.time_tolerances_s.tolist() == [0.0, 1.0]
    assert s.min_cosines.tolist() == [0.5, 0.9]
    np.testing.assert_allclose(s.delta, [[-0.1, 0.0], [0.2, 0.3]])
    assert (s.n_better, s.n_worse) == (2, 1)
    t = sweep_delta([0.0, 3.0], [np.nan], [[0.5], [0.7]], [3.0], [np.nan], [[0.6]])
    assert t.delta.tolist() == [[pytest.approx(0.1)]]
    with pytest.raises(ValueError, match="time-only"):
        sweep_delta([0.0], [np.nan], [[0.5]], [0.0], [0.5], [[0.5]])
    with pytest.raises(ValueError, match="no \\(time tolerance, min cosine\\) point in common"):
        sweep_delta([0.0], [0.5], [[0.5]], [1.0], [0.5], [[0.5]])


def test_simulate_gate_script_false_promotion_rate() -> None:
    """scripts/simulate_gate.py (the promote command's decision path) on fewer trials."""
    trials, alpha = 200, 0.05
    args = SIMULATE.parse_args(
        ["--trials", str(trials), "--videos", "2000", "--resamples", "500", "--alpha", str(alpha)]
        + ["--min-delta", "0", "--champion-recall", "0.7", "--spread", "1.5", "--seed", "11"]
    )
    row = SIMULATE.simulate(0.0, args, np.random.default_rng(11))
    assert row["rate"] <= alpha + 2.5 * math.sqrt(alpha * (1 - alpha) / trials), row
    assert SIMULATE.simulate(0.05, args, np.random.default_rng(12))["rate"] >= 0.95
