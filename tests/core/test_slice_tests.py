"""The per-slice paired tests and the slice gate on built cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from evaluator.core.paired_stats import paired_delta
from evaluator.core.promotion_decision import decide_promotion
from evaluator.core.slice_tests import mcnemar_regression_p, slice_gate, slice_paired
from tests.conftest import load_script


@pytest.mark.parametrize(
    ("gained", "lost"),
    [(0, 0), (0, 1), (1, 9), (9, 1), (5, 5), (5, 6), (6, 5), (40, 80), (300, 310)],
)
def test_one_sided_mcnemar_equals_the_exact_binomial_test(gained: int, lost: int) -> None:
    expected = 1.0 if gained + lost == 0 else binomtest(gained, gained + lost, 0.5, "less").pvalue
    assert mcnemar_regression_p(gained, lost) == pytest.approx(expected, rel=1e-10, abs=1e-15)


def test_slice_paired_is_paired_delta_inside_each_slice() -> None:
    rng = np.random.default_rng(0)
    n = 400
    cand = (rng.random(n) < 0.7).astype(float)
    base = np.where(rng.random(n) < 0.8, cand, 1 - cand)
    codes = rng.integers(0, 3, n)
    p = slice_paired(cand, base, codes, 4, n_resamples=200, confidence=0.9, seed=5)
    for g in range(3):
        s = codes == g
        ref = paired_delta(cand[s], base[s], n_resamples=200, confidence=0.9, seed=5)
        assert p.n_videos[g] == s.sum()
        assert (p.delta[g], p.ci_low[g], p.ci_high[g]) == (
            ref.delta[0],
            ref.ci_low[0],
            ref.ci_high[0],
        )
        assert (p.n_gained[g], p.n_lost[g], p.mcnemar_p[g]) == (
            ref.n_gained[0],
            ref.n_lost[0],
            ref.mcnemar_p[0],
        )
        assert p.p_regression[g] == mcnemar_regression_p(int(ref.n_gained[0]), int(ref.n_lost[0]))
    assert p.n_videos[3] == 0 and np.isnan(p.delta[3])


def test_slice_paired_refuses_a_metric_that_is_not_0_1() -> None:
    with pytest.raises(ValueError, match="0/1 metric"):
        slice_paired(
            np.array([0.5, 1.0]),
            np.array([1.0, 0.0]),
            np.array([0, 0]),
            1,
            n_resamples=10,
            confidence=0.9,
            seed=0,
        )


def _built(regress: bool, n_slices: int = 10, size: int = 300, seed: int = 0):
    """Two models on 10 slices; with regress, slice 0's candidate loses 30 of its hits."""
    rng = np.random.default_rng(seed)
    codes = np.repeat(np.arange(n_slices), size)
    base = (rng.random(codes.shape[0]) < 0.7).astype(float)
    # Noise with equal marginals: on a random 20 % of videos the candidate draws afresh.
    fresh = rng.random(codes.shape[0]) < 0.2
    cand = np.where(fresh, (rng.random(codes.shape[0]) < 0.7).astype(float), base)
    if regress:
        lost = np.flatnonzero((codes == 0) & (cand == 1))[:30]
        cand[lost] = 0.0
    p = slice_paired(cand, base, codes, n_slices, n_resamples=200, confidence=0.95, seed=0)
    labels = np.array([f"genre=g{i}" for i in range(n_slices)], dtype=object)
    return p, labels


def _gate(p, labels, **kw):
    args = dict(min_videos=30, alpha=0.05, adjust="holm")
    args.update(kw)
    return slice_gate(
        "recall_at_10", labels, p.n_videos, p.delta, p.ci_low, p.ci_high, p.p_regression, **args
    )


def _decide(gate):
    """The promotion decision on a flat overall delta (lower bound -0.01 > margin -0.05)."""
    return decide_promotion(
        "recall_at_10",
        has_champion=True,
        delta=0.0,
        lower_bound=-0.01,
        min_delta=-0.05,
        slices=gate,
    )


def test_a_regression_in_one_slice_blocks_and_is_named() -> None:
    p, labels = _built(regress=True)
    gate = _gate(p, labels)
    assert gate.blocks and gate.significant.tolist() == [True] + [False] * 9
    decision = _decide(gate)
    assert not decision.promote
    assert decision.reason.startswith("slice genre=g0 (300 videos): recall_at_10 -0.")
    assert "Holm-adjusted p" in decision.reason and "significant regression" in decision.reason


def test_noise_only_does_not_block() -> None:
    p, labels = _built(regress=False, seed=0)
    gate = _gate(p, labels)
    assert not gate.blocks
    decision = _decide(gate)
    assert decision.promote
    assert "no slice regresses significantly on recall_at_10 (10 slices" in decision.reason


def test_noise_only_blocks_at_most_alpha_of_the_time() -> None:
    # 10 slices, equal models: Holm keeps the chance of any false block <= alpha.
    blocks = [_gate(*_built(regress=False, seed=seed)).blocks for seed in range(200)]
    assert np.mean(blocks) <= 0.05


def test_small_slices_are_reported_but_never_gated() -> None:
    p, labels = _built(regress=True)
    gate = _gate(p, labels, min_videos=301)
    assert not gate.gated.any() and not gate.blocks and np.isnan(gate.p_adjusted).all()
    d = decide_promotion(
        "recall_at_10", has_champion=True, delta=0.01, lower_bound=0.001, slices=gate
    )
    assert d.promote and "none has >= 301 videos" in d.reason
    # Exactly min_videos is gated (the boundary is inclusive).
    assert _gate(p, labels, min_videos=300).gated.all()


def _two_slice_gate(p_regression: list[float], adjust: str = "holm"):
    """Two 50-video slices that both regress by 1 (CI [-1, 1]) with the given p-values."""
    ones = np.ones(2)
    return slice_gate(
        "recall_at_10",
        np.array(["c=a", "c=b"], dtype=object),
        np.array([50, 50]),
        -ones,
        -ones,
        ones,
        np.array(p_regression),
        min_videos=30,
        alpha=0.05,
        adjust=adjust,
    )


def test_the_adjustment_decides_on_the_boundary() -> None:
    # Holm: 2 * 0.025 = 0.05 <= alpha blocks; 2 * 0.0250001 does not.
    g = _two_slice_gate([0.025, 0.5])
    assert g.significant.tolist() == [True, False] and g.p_adjusted[0] == 0.05
    assert not _two_slice_gate([0.0250001, 0.5]).blocks
    # BH flags both of (0.03, 0.04): 2 * 0.03 / 1 = 0.06 -> min with 0.04 = 0.04.
    assert _two_slice_gate([0.03, 0.04], adjust="bh").significant.tolist() == [True, True]
    assert not _two_slice_gate([0.03, 0.04], adjust="holm").blocks


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"alpha": 1.0}, "alpha"), ({"min_videos": -1}, "min_videos"), ({"adjust": "x"}, "unknown")],
)
def test_gate_arguments(kw, message) -> None:
    args = dict(min_videos=30, alpha=0.05, adjust="holm")
    args.update(kw)
    one = np.ones(1)
    with pytest.raises(ValueError, match=message):
        slice_gate("m", np.array(["a"]), one, one, one, one, one * 0.5, **args)


def test_simulate_gate_script_slice_gate() -> None:
    """scripts/simulate_gate.py's slice gate (the promote command's path) on fewer trials."""
    import math

    module = load_script("simulate_gate")
    trials, alpha = 300, 0.05
    args = module.parse_args(
        ["--slices", "10", "--slice-videos", "300", "--slice-trials", str(trials)]
        + ["--slice-resamples", "1", "--min-videos", "30", "--alpha", str(alpha)]
        + ["--champion-recall", "0.7", "--spread", "1.5", "--seed", "3"]
    )
    null = module.simulate_slices(0.0, "holm", 0.8, args, np.random.default_rng(3))
    assert null["blocked"] <= alpha + 2.5 * math.sqrt(alpha * (1 - alpha) / trials), null
    drop = module.simulate_slices(0.05, "holm", 0.8, args, np.random.default_rng(4))
    assert drop["blocked"] >= 0.5 and drop["target"] >= 0.5, drop
