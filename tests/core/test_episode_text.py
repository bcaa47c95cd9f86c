"""The episode text and consensus metrics against the plain-loop references in tests/reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluator.core.bootstrap import resample_counts
from evaluator.core.episode import evaluate_episodes, risk_coverage_curve
from evaluator.core.episode_consensus import consensus_curve, second_readings
from evaluator.core.episode_inputs import episode_videos
from evaluator.core.episode_text import (
    CONSENSUS_METRICS,
    TEXT_METRICS,
    evaluate_episode_text,
    grouped_text_intervals,
    grouped_text_metrics,
    normalize_text,
    text_cer,
    text_intervals,
    text_reads,
    worst_misreads_order,
)
from tests.reference.episode_text import (
    ref_consensus_curve,
    ref_consensus_metrics,
    ref_levenshtein,
    ref_normalize,
    ref_text_metrics,
)

# Korean, ASCII, full-width digits and letters (NFKC turns them into ASCII), and whitespace of
# every kind the contract collapses (tab, newline, NBSP, ideographic space, em space).
ALPHABET = "제화회편第話EPep 0123456789０１２３４５６７８９ＥＰ\t\n\u00a0\u3000\u2003-."
FULL_WIDTH = str.maketrans("0123456789EP ", "０１２３４５６７８９ＥＰ\u3000")
texts = st.text(alphabet=ALPHABET, max_size=10)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12, abs=1e-12)


@st.composite
def text_pair(draw: st.DrawFn) -> tuple[str | None, str | None]:
    """(text_read, text_true): missing truths, empty reads, and reads equal to the truth up to
    full-width forms and spacing (so exact matches are common)."""
    truth = draw(st.one_of(st.none(), st.just(""), texts))
    kind = draw(st.sampled_from(["same", "dressed", "other", "none", "empty"]))
    if kind == "same" and truth is not None:
        read: str | None = truth
    elif kind == "dressed" and truth is not None:
        read = f"\u3000{truth.translate(FULL_WIDTH)}\t\n"
    elif kind == "none":
        read = None
    elif kind == "empty":
        read = ""
    else:
        read = draw(texts)
    return read, truth


@st.composite
def tables(draw: st.DrawFn) -> list[dict]:
    n = draw(st.integers(1, 14))
    rows = []
    for _ in range(n):
        read, truth = draw(text_pair())
        rows.append(
            {
                "metadata_episode": draw(st.integers(1, 3)),
                "predicted_episode": draw(st.integers(1, 3)),
                "true_episode": draw(st.integers(1, 3)),
                "confidence": draw(st.sampled_from([0.0, 0.5, 0.9, 1.0])),
                "text_episode": draw(st.one_of(st.none(), st.integers(1, 3))),
                "text_read": read,
                "text_true": truth,
                "group": draw(st.integers(0, 2)),
            }
        )
    return rows


def _columns(rows: list[dict]) -> dict:
    return {
        "meta": np.array([r["metadata_episode"] for r in rows]),
        "pred": np.array([r["predicted_episode"] for r in rows]),
        "true": np.array([r["true_episode"] for r in rows]),
        "conf": np.array([r["confidence"] for r in rows]),
        "text_episode": np.array(
            [math.nan if r["text_episode"] is None else r["text_episode"] for r in rows]
        ),
        "text_read": [r["text_read"] for r in rows],
        "text_true": [r["text_true"] for r in rows],
        "group": np.array([r["group"] for r in rows]),
    }


def _evaluate(rows: list[dict], threshold: float = 0.9, n_resamples: int = 20):
    c = _columns(rows)
    return evaluate_episode_text(
        c["meta"],
        c["pred"],
        c["true"],
        c["conf"],
        text_read=c["text_read"],
        text_true=c["text_true"],
        text_episode=c["text_episode"],
        threshold=threshold,
        n_resamples=n_resamples,
    )


# ----------------------------------------------------------------------------- references


@settings(max_examples=200, deadline=None)
@given(text=st.one_of(st.none(), texts))
def test_normalize_matches_the_reference(text: str | None) -> None:
    assert normalize_text(text) == ref_normalize(text)


@settings(max_examples=200, deadline=None)
@given(pair=text_pair())
def test_edit_distance_matches_the_textbook_one(pair) -> None:
    read, truth = pair
    reads = text_reads([read], [truth])
    if truth is None:
        assert reads.distance[0] == 0 and not reads.has_truth[0]
    else:
        expected = ref_levenshtein(ref_normalize(read), ref_normalize(truth))
        assert reads.distance[0] == expected
        assert reads.truth_length[0] == len(ref_normalize(truth))


@settings(max_examples=150, deadline=None)
@given(rows=tables(), threshold=st.sampled_from([0.0, 0.5, 0.9, 1.0]))
def test_metrics_match_the_reference(rows, threshold) -> None:
    got = _evaluate(rows, threshold).metrics
    expected = {**ref_text_metrics(rows), **ref_consensus_metrics(rows, threshold)}
    for name, value in expected.items():
        assert _same(got[name], value), (name, got[name], value)


@settings(max_examples=100, deadline=None)
@given(rows=tables())
def test_consensus_curve_is_the_policy_at_every_threshold(rows) -> None:
    curve = _evaluate(rows).curve
    ref = ref_consensus_curve(rows)
    assert curve.threshold.tolist() == [t for t, _, _ in ref]
    for j, (_, coverage, accuracy) in enumerate(ref):
        assert _same(curve.coverage[j], coverage)
        assert _same(curve.auto_accuracy[j], accuracy)


@settings(max_examples=100, deadline=None)
@given(rows=tables(), threshold=st.sampled_from([0.5, 0.9]))
def test_group_columns_match_the_reference_on_each_group(rows, threshold) -> None:
    c = _columns(rows)
    v = episode_videos(c["meta"], c["pred"], c["true"], c["conf"])
    reads = text_reads(c["text_read"], c["text_true"])
    readings = second_readings(c["pred"], c["true"], c["text_episode"])
    got = grouped_text_metrics(v, reads, readings, c["group"], 3, threshold=threshold)
    for g in range(3):
        part = [r for r in rows if r["group"] == g]
        expected = {**ref_text_metrics(part), **ref_consensus_metrics(part, threshold)}
        expected.pop("episode_errors_with_text_error")
        for name, value in expected.items():
            assert _same(float(got[name][g]), value), (g, name)


@settings(max_examples=60, deadline=None)
@given(rows=tables(), seed=st.integers(0, 5))
def test_shuffling_the_videos_changes_no_point_metric(rows, seed) -> None:
    shuffled = [rows[i] for i in np.random.default_rng(seed).permutation(len(rows))]
    a, b = _evaluate(rows).metrics, _evaluate(shuffled).metrics
    for name in a:
        if "_ci_" not in name:  # intervals draw videos by position
            assert _same(a[name], b[name]), name


def test_intervals_are_ratios_of_resampled_sums() -> None:
    rng = np.random.default_rng(3)
    truths = [
        None if rng.random() < 0.2 else "제" + "1" * int(rng.integers(0, 4)) for _ in range(40)
    ]
    reads = ["제11" if rng.random() < 0.5 else "" for _ in range(40)]
    r = text_reads(reads, truths)
    kept = [i for i, t in enumerate(truths) if t is not None]
    counts = resample_counts(len(kept), 300, 7)
    cer, exact = [], []
    for row in counts:  # one resample at a time
        errors = sum(int(k) * int(r.distance[i]) for k, i in zip(row, kept, strict=True))
        chars = sum(int(k) * int(r.truth_length[i]) for k, i in zip(row, kept, strict=True))
        hits = sum(int(k) * int(r.distance[i] == 0) for k, i in zip(row, kept, strict=True))
        if chars:
            cer.append(errors / chars)
        exact.append(hits / len(kept))
    got = text_intervals(r, n_resamples=300, ci_level=0.9, seed=7)
    expected = (*np.quantile(cer, [0.05, 0.95]), *np.quantile(exact, [0.05, 0.95]))
    assert got == pytest.approx(expected, rel=1e-12)
    one_group = grouped_text_intervals(
        r, np.zeros(40, int), 1, n_resamples=300, ci_level=0.9, seed=7
    )
    # A group holding every video gets the whole set's intervals.
    assert one_group["text_cer_ci_low"][0] == pytest.approx(got[0], rel=1e-12)
    assert one_group["text_cer_ci_high"][0] == pytest.approx(got[1], rel=1e-12)
    assert one_group["text_exact_match_ci_low"][0] == pytest.approx(got[2], rel=1e-12)
    assert one_group["text_exact_match_ci_high"][0] == pytest.approx(got[3], rel=1e-12)


# ----------------------------------------------------------------------------- by hand


def test_hand_case_text() -> None:
    # EP 12 / EP 17: 1 substitution; 제3화 / nothing: 3 deletions; no truth: left out;
    # "" / ghost: 5 insertions; 제１２화 (full width, odd spaces) / 제12화: equal after NFKC.
    reads = ["EP 17", None, "x", "ghost", "\u3000제１２화\t"]
    truths = ["EP 12", "제3화", None, "", "제12화"]
    r = text_reads(reads, truths)
    assert r.distance.tolist() == [1, 3, 0, 5, 0]
    assert r.truth_length.tolist() == [5, 3, 0, 0, 4]
    assert text_cer(r) == pytest.approx(9 / 12)
    m = evaluate_episode_text(
        [1, 2, 3, 4, 5],
        [1, 9, 3, 9, 9],
        [1, 2, 3, 4, 5],
        [1.0] * 5,
        text_read=reads,
        text_true=truths,
        threshold=0.5,
        n_resamples=10,
    ).metrics
    assert m["text_exact_match"] == 1 / 4 and m["n_text_videos"] == 4
    # Episode errors on rows 2, 4, 5; transcribed all three; misread rows 2 and 4.
    assert m["episode_errors_with_text_error"] == pytest.approx(2 / 3)
    assert set(m) == set(TEXT_METRICS)  # no consensus metric without text_episode


def test_text_cer_can_exceed_one_and_is_nan_without_characters() -> None:
    assert text_cer(text_reads(["EP 100"], ["1"])) == 5.0  # 5 deletions, 1 character
    empty = evaluate_episode_text(
        [1, 1], [1, 1], [1, 1], [1, 1], text_read=["", "x"], text_true=["", ""], threshold=0.5
    ).metrics
    assert math.isnan(empty["text_cer"])
    assert math.isnan(empty["text_cer_ci_low"]) and math.isnan(empty["text_cer_ci_high"])
    assert empty["text_exact_match"] == 0.5
    none = evaluate_episode_text(
        [1], [1], [1], [1], text_read=["x"], text_true=[None], threshold=0.5
    ).metrics
    assert none["n_text_videos"] == 0
    assert all(math.isnan(none[k]) for k in ("text_cer", "text_exact_match", "text_cer_ci_low"))
    assert math.isnan(none["episode_errors_with_text_error"])


def test_hand_case_consensus_on_the_threshold() -> None:
    # threshold 0.9. v1 agrees at exactly 0.9 (decided, right). v2 agrees, predicted ==
    # metadata != true: decided, a missed mismatch. v3 agrees below the threshold. v4's text
    # reading is missing: wrong and a disagreement. v5 disagrees with confidence 1.
    meta = [1, 2, 3, 4, 5]
    pred = [1, 2, 3, 4, 6]
    true = [1, 7, 3, 4, 6]
    conf = [0.9, 0.95, 0.89, 1.0, 1.0]
    text = [1, 2, 3, math.nan, 5]
    r = evaluate_episode_text(meta, pred, true, conf, text_episode=text, threshold=0.9)
    m = r.metrics
    assert m["text_episode_accuracy"] == pytest.approx(2 / 5)
    assert m["readings_agree"] == pytest.approx(3 / 5)
    assert m["accuracy_when_readings_agree"] == pytest.approx(2 / 3)
    assert m["consensus_coverage"] == pytest.approx(2 / 5)
    assert m["consensus_auto_accuracy"] == pytest.approx(1 / 2)
    assert m["consensus_missed_mismatches"] == 1
    assert r.consensus is not None and r.consensus.decided.tolist() == [1, 1, 0, 0, 0]
    assert r.curve is not None and r.curve.threshold.tolist() == [0.95, 0.9, 0.89]
    assert r.curve.coverage.tolist() == pytest.approx([1 / 5, 2 / 5, 3 / 5])
    assert set(m) == set(CONSENSUS_METRICS)  # no text metric without text_true


def test_consensus_curve_without_agreement_is_empty_and_shares_the_single_curves_axis() -> None:
    v = episode_videos([1, 2], [1, 2], [1, 2], [0.5, 0.7])
    assert consensus_curve(v, np.array([False, False])).threshold.size == 0
    single = risk_coverage_curve([1, 2], [1, 2], [1, 2], [0.5, 0.7])
    both = consensus_curve(v, np.array([True, True]))
    assert both.coverage.tolist() == single.coverage.tolist()
    assert both.auto_accuracy.tolist() == single.auto_accuracy.tolist()


def test_worst_misreads_first() -> None:
    reads = ["EP 1", "EP 12", "EP 99", "", "ghost", "EP 1"]
    truths = ["EP 1", "EP 13", "EP 11", "제5화", "", None]
    r = text_reads(reads, truths)
    order = worst_misreads_order(r, np.array(["a", "b", "c", "d", "e", "f"]))
    # e: 5 edits (empty truth: the highest rate); d: 3 edits (rate 1); c: 2; b: 1.
    assert order.tolist() == [4, 3, 2, 1]


@pytest.mark.parametrize(
    ("read", "truth", "episode", "message"),
    [
        (["a", 12], ["a", "b"], None, r"text_read must hold texts .* rows \[1\]"),
        (["a", "b"], [["x"], "b"], None, r"text_true must hold texts .* rows \[0\]"),
        (["a"], ["a", "b"], None, "one value per video"),
        (None, None, [1.5], r"text_episode must hold whole numbers .* rows \[0\]"),
        (None, None, [math.inf], r"text_episode must hold whole numbers"),
        (None, None, np.array(["1"]), "dtype"),
        (None, None, [1, 2], "one value per video"),
    ],
)
def test_bad_values_are_refused(read, truth, episode, message) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_episode_text(
            [1],
            [1],
            [1],
            [1.0],
            text_read=read,
            text_true=truth,
            text_episode=episode,
            threshold=0.5,
        )


@settings(max_examples=100, deadline=None)
@given(rows=tables(), threshold=st.sampled_from([0.0, 0.5, 0.9, 1.0]))
def test_the_consensus_never_decides_more_or_misses_more_than_the_single_model(
    rows, threshold
) -> None:
    c = _columns(rows)
    single = evaluate_episodes(
        c["meta"], c["pred"], c["true"], c["conf"], threshold=threshold, n_resamples=5
    ).metrics
    m = _evaluate(rows, threshold).metrics
    assert m["consensus_coverage"] <= single["coverage"]
    assert m["consensus_coverage"] <= m["readings_agree"]
    assert m["consensus_missed_mismatches"] <= single["n_missed_mismatches_auto_accepted"]
