"""Tests of the episode-verification metrics against plain-loop references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import confusion_matrix, f1_score, precision_score, recall_score

from evaluator.core.bootstrap import resample_counts
from evaluator.core.episode import (
    automation_at_threshold,
    coverage_at_accuracy,
    curve_at_thresholds,
    episode_accuracy,
    evaluate_episodes,
    group_breakdown,
    mismatch_scores,
    risk_coverage_curve,
)

# ----------------------------------------------------------------------------- references


def ref_automation(meta, pred, true, conf, threshold) -> dict:
    """Automated decisions at one threshold, one video at a time."""
    decisions, n_auto, n_right, missed, false_flags = [], 0, 0, 0, 0
    for m, p, t, c in zip(meta, pred, true, conf, strict=True):
        flag, mismatch = p != m, t != m
        if c >= threshold:
            n_auto += 1
            decisions.append("auto_flag" if flag else "auto_accept")
            n_right += flag == mismatch
            missed += (not flag) and mismatch
            false_flags += flag and not mismatch
        else:
            decisions.append("human_review")
    return {
        "decisions": decisions,
        "n_auto": n_auto,
        "n_errors": n_auto - n_right,
        "coverage": n_auto / len(meta),
        "auto_accuracy": n_right / n_auto if n_auto else math.nan,
        "missed": missed,
        "false_flags": false_flags,
    }


def ref_curve(meta, pred, true, conf) -> list[tuple[float, dict]]:
    return [(t, ref_automation(meta, pred, true, conf, t)) for t in sorted(set(conf), reverse=True)]


def ref_coverage_at_accuracy(meta, pred, true, conf, target) -> tuple[float, float]:
    """Brute force over every distinct confidence as the threshold."""
    best_coverage, best_threshold = 0.0, math.nan
    for t, a in ref_curve(meta, pred, true, conf):
        if a["n_auto"] and a["auto_accuracy"] >= target and a["coverage"] > best_coverage:
            best_coverage, best_threshold = a["coverage"], t
    return best_coverage, best_threshold


def ref_mismatch(meta, pred, true) -> tuple[float, float, float, list[list[int]]]:
    tp = fp = fn = tn = 0
    for m, p, t in zip(meta, pred, true, strict=True):
        flag, mismatch = p != m, t != m
        tp += flag and mismatch
        fp += flag and not mismatch
        fn += (not flag) and mismatch
        tn += (not flag) and not mismatch
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return precision, recall, f1, [[tn, fp], [fn, tp]]


# ----------------------------------------------------------------------------- data

HAND = {
    "meta": np.array([1, 1, 1, 1, 1, 2]),
    "pred": np.array([1, 2, 1, 2, 1, 2]),
    "true": np.array([1, 2, 2, 1, 1, 3]),
    "conf": np.array([0.9, 0.8, 0.8, 0.8, 0.3, 0.5]),
}
# Video 0: accepted, right. 1: flagged, right. 2: predicted == metadata != true, so accepted
# and a missed mismatch. 3: flagged though metadata is right, a false flag. 4 and 5 fall
# below a 0.8 threshold (5 would be another missed mismatch).


def hand(*keys: str) -> tuple[np.ndarray, ...]:
    return tuple(HAND[k] for k in keys)


def random_set(seed: int, n: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    meta = rng.integers(1, 5, n)
    true = np.where(rng.random(n) < 0.3, rng.integers(1, 5, n), meta)
    pred = np.where(rng.random(n) < 0.7, true, rng.integers(1, 5, n))
    conf = np.round(rng.random(n), 1)  # rounded, so there are many ties
    return meta, pred, true, conf


episode_sets = st.integers(1, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 3), min_size=n, max_size=n),
        st.lists(st.integers(0, 3), min_size=n, max_size=n),
        st.lists(st.integers(0, 3), min_size=n, max_size=n),
        st.lists(st.sampled_from([0.0, 0.2, 0.5, 0.7, 0.9, 1.0]), min_size=n, max_size=n),
    )
)

# ----------------------------------------------------------------------------- hand cases


def test_hand_case_at_threshold_with_ties() -> None:
    a = automation_at_threshold(*hand("meta", "pred", "true", "conf"), threshold=0.8)
    # The three videos at exactly 0.8 are decided alone.
    assert a.decisions.tolist() == [
        "auto_accept", "auto_flag", "auto_accept", "auto_flag", "human_review", "human_review",
    ]  # fmt: skip
    assert a.decision_correct.tolist() == [True, True, False, False, True, False]
    assert (a.coverage, a.auto_accuracy, a.n_auto) == (4 / 6, 0.5, 4)
    assert (a.n_missed_mismatches_auto_accepted, a.n_false_flags_auto) == (1, 1)
    above = automation_at_threshold(*hand("meta", "pred", "true", "conf"), threshold=0.8 + 1e-9)
    assert above.n_auto == 1 and above.auto_accuracy == 1.0


def test_hand_case_mismatch_scores() -> None:
    s = mismatch_scores(*hand("meta", "pred", "true"))
    assert (s.precision, s.recall, s.f1) == (0.5, 1 / 3, 0.4)
    assert s.confusion.tolist() == [[2, 1], [2, 1]]
    assert episode_accuracy(*hand("pred", "true")) == 0.5


def test_all_below_threshold_gives_zero_coverage() -> None:
    a = automation_at_threshold(*hand("meta", "pred", "true", "conf"), threshold=0.95)
    assert a.coverage == 0.0 and a.n_auto == 0
    assert math.isnan(a.auto_accuracy)
    assert set(a.decisions.tolist()) == {"human_review"}


def test_hand_case_curve() -> None:
    c = risk_coverage_curve(*hand("meta", "pred", "true", "conf"))
    assert c.threshold.tolist() == [0.9, 0.8, 0.5, 0.3]
    assert c.n_auto.tolist() == [1, 4, 5, 6]
    assert c.n_errors.tolist() == [0, 2, 3, 3]
    assert c.auto_accuracy.tolist() == [1.0, 0.5, 0.4, 0.5]
    assert c.n_missed_mismatches_auto_accepted.tolist() == [0, 1, 2, 2]
    assert c.n_false_flags_auto.tolist() == [0, 1, 1, 1]
    assert c.coverage[-1] == 1.0


@pytest.mark.parametrize(
    ("target", "coverage", "threshold"),
    # Accuracy is not monotone in the threshold: at target 0.5 the lowest threshold wins.
    [(0.5, 1.0, 0.3), (0.45, 1.0, 0.3), (0.51, 1 / 6, 0.9), (0.99, 1 / 6, 0.9), (1.0, 1 / 6, 0.9)],
)
def test_hand_case_coverage_at_accuracy(target: float, coverage: float, threshold: float) -> None:
    r = coverage_at_accuracy(*hand("meta", "pred", "true", "conf"), target=target, n_resamples=50)
    assert (r.coverage, r.threshold) == (coverage, threshold)
    assert r.ci_low <= r.ci_high


def test_no_threshold_reaches_the_target() -> None:
    # Both automated decisions are wrong at every threshold.
    r = coverage_at_accuracy([1, 1], [2, 1], [1, 2], [0.7, 0.6], target=0.5, n_resamples=30)
    assert (r.coverage, r.n_auto, r.ci_low, r.ci_high) == (0.0, 0, 0.0, 0.0)
    assert math.isnan(r.threshold) and math.isnan(r.auto_accuracy)


# ----------------------------------------------------------------------------- references


@settings(max_examples=150, deadline=None)
@given(data=episode_sets, threshold=st.sampled_from([0.0, 0.2, 0.5, 0.6, 0.9, 1.0, 1.1]))
def test_automation_and_curve_match_reference(data: tuple, threshold: float) -> None:
    meta, pred, true, conf = (np.array(x) for x in data)
    a = automation_at_threshold(meta, pred, true, conf, threshold=threshold)
    ref = ref_automation(meta, pred, true, conf, threshold)
    assert a.decisions.tolist() == ref["decisions"]
    assert (a.coverage, a.n_auto) == (ref["coverage"], ref["n_auto"])
    assert a.auto_accuracy == ref["auto_accuracy"] or (
        math.isnan(a.auto_accuracy) and math.isnan(ref["auto_accuracy"])
    )
    assert a.n_missed_mismatches_auto_accepted == ref["missed"]
    assert a.n_false_flags_auto == ref["false_flags"]

    c = risk_coverage_curve(meta, pred, true, conf)
    points = ref_curve(meta, pred, true, conf)
    assert c.threshold.tolist() == [t for t, _ in points]
    assert c.coverage.tolist() == [p["coverage"] for _, p in points]
    assert c.auto_accuracy.tolist() == [p["auto_accuracy"] for _, p in points]
    assert c.n_auto.tolist() == [p["n_auto"] for _, p in points]
    assert c.n_errors.tolist() == [p["n_errors"] for _, p in points]
    assert c.n_missed_mismatches_auto_accepted.tolist() == [p["missed"] for _, p in points]
    assert c.n_false_flags_auto.tolist() == [p["false_flags"] for _, p in points]
    assert c.coverage[-1] == 1.0 and c.threshold[0] == conf.max()


GRID = [1.1, 1.0, 0.95, 0.9, 0.75, 0.7, 0.5, 0.45, 0.2, 0.0, -0.1]


@settings(max_examples=100, deadline=None)
@given(data=episode_sets)
def test_curve_at_thresholds_equals_automation_at_each_threshold(data: tuple) -> None:
    meta, pred, true, conf = (np.array(x) for x in data)
    at = curve_at_thresholds(risk_coverage_curve(meta, pred, true, conf), np.array(GRID))
    assert at.threshold.tolist() == GRID
    for j, t in enumerate(GRID):
        ref = ref_automation(meta, pred, true, conf, t)
        assert (at.coverage[j], at.n_auto[j], at.n_errors[j]) == (
            ref["coverage"],
            ref["n_auto"],
            ref["n_errors"],
        )
        assert at.auto_accuracy[j] == ref["auto_accuracy"] or (
            math.isnan(at.auto_accuracy[j]) and math.isnan(ref["auto_accuracy"])
        )
        assert at.n_missed_mismatches_auto_accepted[j] == ref["missed"]
        assert at.n_false_flags_auto[j] == ref["false_flags"]


def test_curve_at_thresholds_refuses_nan() -> None:
    curve = risk_coverage_curve(*hand("meta", "pred", "true", "conf"))
    with pytest.raises(ValueError, match="NaN"):
        curve_at_thresholds(curve, np.array([0.5, math.nan]))


@settings(max_examples=150, deadline=None)
@given(data=episode_sets)
def test_mismatch_scores_match_reference_and_sklearn(data: tuple) -> None:
    meta, pred, true, _ = (np.array(x) for x in data)
    s = mismatch_scores(meta, pred, true)
    precision, recall, f1, confusion = ref_mismatch(meta, pred, true)
    assert (s.precision, s.recall, s.f1) == pytest.approx((precision, recall, f1), abs=1e-15)
    assert s.confusion.tolist() == confusion
    truth, flag = true != meta, pred != meta
    np.testing.assert_array_equal(s.confusion, confusion_matrix(truth, flag, labels=[False, True]))
    assert s.precision == pytest.approx(precision_score(truth, flag, zero_division=0), abs=1e-15)
    assert s.recall == pytest.approx(recall_score(truth, flag, zero_division=0), abs=1e-15)
    assert s.f1 == pytest.approx(f1_score(truth, flag, zero_division=0), abs=1e-15)


@pytest.mark.parametrize("case", ["no flags", "no mismatches", "neither"])
def test_zero_division_cases_match_sklearn(case: str) -> None:
    meta = np.array([1, 2, 3, 4])
    pred = {"no flags": meta, "no mismatches": [9, 2, 3, 4], "neither": meta}[case]
    true = {"no flags": [1, 9, 3, 4], "no mismatches": meta, "neither": meta}[case]
    s = mismatch_scores(meta, pred, true)
    truth, flag = np.asarray(true) != meta, np.asarray(pred) != meta
    expected = (
        precision_score(truth, flag, zero_division=0),
        recall_score(truth, flag, zero_division=0),
        f1_score(truth, flag, zero_division=0),
    )
    assert (s.precision, s.recall, s.f1) == expected == (0.0, 0.0, 0.0)


@settings(max_examples=100, deadline=None)
@given(data=episode_sets, target=st.sampled_from([0.3, 0.5, 2 / 3, 0.8, 0.99, 1.0]))
def test_coverage_at_accuracy_is_the_brute_force_optimum(data: tuple, target: float) -> None:
    meta, pred, true, conf = (np.array(x) for x in data)
    r = coverage_at_accuracy(meta, pred, true, conf, target=target, n_resamples=20)
    coverage, threshold = ref_coverage_at_accuracy(meta, pred, true, conf, target)
    assert r.coverage == coverage
    assert r.threshold == threshold or (math.isnan(r.threshold) and math.isnan(threshold))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coverage_interval_equals_naive_resampling(seed: int) -> None:
    meta, pred, true, conf = random_set(seed, 45)
    r = coverage_at_accuracy(
        meta, pred, true, conf, target=0.8, n_resamples=150, ci_level=0.9, seed=seed
    )
    sampled = []
    for row in resample_counts(45, 150, seed):
        chosen = np.repeat(np.arange(45), row)
        sampled.append(
            ref_coverage_at_accuracy(meta[chosen], pred[chosen], true[chosen], conf[chosen], 0.8)[0]
        )
    assert r.ci_low == np.quantile(sampled, 0.05)
    assert r.ci_high == np.quantile(sampled, 0.95)
    assert (r.ci_level, r.n_resamples) == (0.9, 150)


# ----------------------------------------------------------------------------- the bundle


def test_evaluate_episodes_metric_names_and_values() -> None:
    meta, pred, true, conf = random_set(4, 300)
    r = evaluate_episodes(
        meta, pred, true, conf, threshold=0.6, target_accuracies=(0.99, 0.9), n_resamples=100
    )
    expected_names = {
        "episode_accuracy", "mismatch_precision", "mismatch_recall", "mismatch_f1", "coverage",
        "auto_accuracy", "n_missed_mismatches_auto_accepted", "n_false_flags_auto", "n_videos",
    }  # fmt: skip
    for p in ("0.99", "0.9"):
        base = f"coverage_at_accuracy_{p}"
        expected_names |= {base, f"{base}_threshold", f"{base}_ci_low", f"{base}_ci_high"}
    assert set(r.metrics) == expected_names
    assert all(isinstance(v, float) for v in r.metrics.values())

    ref = ref_automation(meta, pred, true, conf, 0.6)
    precision, recall, f1, confusion = ref_mismatch(meta, pred, true)
    assert r.metrics["episode_accuracy"] == np.mean(pred == true)
    assert r.metrics["mismatch_precision"] == pytest.approx(precision, abs=1e-15)
    assert r.metrics["mismatch_recall"] == pytest.approx(recall, abs=1e-15)
    assert r.metrics["mismatch_f1"] == pytest.approx(f1, abs=1e-15)
    assert r.metrics["coverage"] == ref["coverage"]
    assert r.metrics["auto_accuracy"] == ref["auto_accuracy"]
    assert r.metrics["n_missed_mismatches_auto_accepted"] == ref["missed"]
    assert r.metrics["n_false_flags_auto"] == ref["false_flags"]
    assert r.metrics["n_videos"] == 300
    assert r.decisions.tolist() == ref["decisions"]
    assert r.confusion.tolist() == confusion
    np.testing.assert_array_equal(r.episode_correct, pred == true)
    np.testing.assert_array_equal(r.decision_correct, (pred != meta) == (true != meta))
    for p, item in zip((0.99, 0.9), r.coverage_at_accuracy, strict=True):
        single = coverage_at_accuracy(meta, pred, true, conf, target=p, n_resamples=100)
        assert item == single
        name = f"coverage_at_accuracy_{p}"
        assert r.metrics[name] == single.coverage
        assert r.metrics[f"{name}_ci_low"] == single.ci_low
        assert r.metrics[f"{name}_ci_high"] == single.ci_high
    assert r.groups is None


def test_shuffling_videos_changes_no_point_metric() -> None:
    meta, pred, true, conf = random_set(8, 200)
    perm = np.random.default_rng(0).permutation(200)
    options = {"threshold": 0.5, "target_accuracies": (0.99, 0.8), "n_resamples": 20}
    a = evaluate_episodes(meta, pred, true, conf, **options)
    b = evaluate_episodes(meta[perm], pred[perm], true[perm], conf[perm], **options)
    assert not math.isnan(a.metrics["coverage_at_accuracy_0.8_threshold"])
    for name, value in a.metrics.items():
        if not name.endswith(("_ci_low", "_ci_high")):
            assert b.metrics[name] == pytest.approx(value, rel=1e-12, nan_ok=True), name
    np.testing.assert_array_equal(a.curve.n_errors, b.curve.n_errors)
    np.testing.assert_array_equal(a.decisions[perm], b.decisions)


@pytest.mark.parametrize("labels", ["int", "str"])
def test_group_breakdown_equals_per_group_evaluation(labels: str) -> None:
    meta, pred, true, conf = random_set(5, 250)
    groups = np.random.default_rng(1).integers(0, 6, 250)
    if labels == "str":
        groups = np.array([f"series-{g}" for g in groups])
    g = group_breakdown(meta, pred, true, conf, groups, threshold=0.7)
    assert g.group.tolist() == sorted(set(groups.tolist()))
    for k, label in enumerate(g.group):
        mask = groups == label
        ref = ref_automation(meta[mask], pred[mask], true[mask], conf[mask], 0.7)
        precision, recall, _, _ = ref_mismatch(meta[mask], pred[mask], true[mask])
        assert g.n_videos[k] == mask.sum()
        assert g.episode_accuracy[k] == pytest.approx(np.mean(pred[mask] == true[mask]))
        assert g.mismatch_precision[k] == pytest.approx(precision)
        assert g.mismatch_recall[k] == pytest.approx(recall)
        assert g.coverage[k] == pytest.approx(ref["coverage"])
        assert g.auto_accuracy[k] == pytest.approx(ref["auto_accuracy"], nan_ok=True)
    assert list(g.columns()) == [
        "group", "n_videos", "episode_accuracy", "mismatch_precision", "mismatch_recall",
        "coverage", "auto_accuracy",
    ]  # fmt: skip
    r = evaluate_episodes(meta, pred, true, conf, threshold=0.7, groups=groups, n_resamples=10)
    np.testing.assert_array_equal(r.groups.coverage, g.coverage)


def test_group_without_automated_videos_has_nan_accuracy() -> None:
    g = group_breakdown(
        [1, 1, 1], [1, 2, 1], [1, 1, 1], [0.9, 0.1, 0.2], ["a", "b", "b"], threshold=0.5
    )
    assert g.coverage.tolist() == [1.0, 0.0]
    assert g.auto_accuracy[0] == 1.0 and math.isnan(g.auto_accuracy[1])
    assert g.mismatch_precision.tolist() == [0.0, 0.0] and g.mismatch_recall.tolist() == [0, 0]


# ----------------------------------------------------------------------------- bad input

GOOD = {
    "metadata_episode": [1, 2],
    "predicted_episode": [1, 2],
    "true_episode": [1, 2],
    "confidence": [0.5, 0.5],
    "threshold": 0.5,
}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"true_episode": [1, 2, 3]}, r"the same length\), got lengths \[2, 2, 3, 2\]"),
        ({"confidence": [0.5, 1.5]}, r"confidence must be in \[0, 1\]; rows \[1\] hold \[1.5\]"),
        ({"confidence": [np.nan, 0.1]}, r"rows \[0\] hold \[nan\]"),
        ({"confidence": [-0.1, 0.1]}, r"confidence must be in \[0, 1\]"),
        ({"predicted_episode": [1.5, 2.0]}, r"predicted_episode must hold integer .* \[1.5\]"),
        ({"metadata_episode": ["1", "2"]}, "metadata_episode must hold integer episode numbers"),
        ({"true_episode": [[1, 2]]}, "true_episode must be a 1-D array"),
        (
            {"metadata_episode": [], "predicted_episode": [], "true_episode": [], "confidence": []},
            "no videos",
        ),
        ({"threshold": math.nan}, "threshold must not be NaN"),
        ({"target_accuracies": (0.0,)}, r"target accuracy must be in \(0, 1\]"),
        ({"target_accuracies": (0.99, 0.990)}, "target_accuracies must be distinct"),
        ({"groups": ["a"]}, r"groups must have one value per video, shape \(2,\)"),
        ({"n_resamples": 0}, "n_resamples must be >= 1"),
        ({"ci_level": 1.0}, r"ci_level must be in \(0, 1\)"),
    ],
)
def test_bad_input(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_episodes(**{**GOOD, **changes})


def test_docstring_examples() -> None:
    import doctest

    import evaluator.core.episode as episode
    import evaluator.core.episode_coverage as coverage

    for module in (episode, coverage):
        assert doctest.testmod(module).failed == 0
