"""The poster core against the naive reference, hand-computed cases and invariances."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluator.core.frames import (
    Frames,
    exact_duplicate_mask,
    group_for_matching,
    ranks_from_scores,
)
from evaluator.core.matching import MATCH_FLOAT_FIELDS, MISS_REASONS, match_videos
from evaluator.core.poster import (
    PosterResult,
    PosterSettings,
    evaluate_poster,
    poster_result,
    score_set,
)
from evaluator.report.gallery import FrameJudge, FrameMatches
from tests.reference.poster import reference_evaluate


def build(experts: list[tuple], predictions: list[tuple], *, with_emb: bool = True):
    """(experts, predictions) row lists -> Frames with shared video codes, like the io layer."""
    ids = [r[0] for r in experts] + [r[0] for r in predictions]
    codes, uniques = pd.factorize(np.array(ids, dtype=object))
    ne = len(experts)

    dim = len((experts or predictions)[0][2] or ()) if (experts or predictions) else 1

    def emb(rows):
        if not with_emb:
            return None
        return np.array([r[2] for r in rows], dtype=np.float32).reshape(len(rows), dim)

    ex = Frames(
        video=codes[:ne].astype(np.int64),
        timestamp=np.array([r[1] for r in experts], dtype=np.float64),
        embedding=emb(experts),
        row_key=np.array([r[3] for r in experts], dtype=np.int64),
    )
    mo = Frames(
        video=codes[ne:].astype(np.int64),
        timestamp=np.array([r[1] for r in predictions], dtype=np.float64),
        embedding=emb(predictions),
        rank=np.array([r[3] for r in predictions], dtype=np.int64),
    )
    return ex, mo, np.asarray(uniques, dtype=object)


def random_set(rng: np.random.Generator, n_videos: int = 12, dim: int = 3, zero_p: float = 0.05):
    """Small integer vectors and half-second timestamps, so boundaries are hit exactly."""
    experts, predictions = [], []
    for v in range(n_videos):
        vid = f"v{v}"
        for _ in range(int(rng.integers(0, 8))):
            e = tuple(int(x) for x in rng.integers(-2, 3, dim))
            if rng.random() < zero_p:
                e = (0,) * dim
            row = (vid, float(rng.integers(0, 40)) / 2, e, int(rng.integers(0, 2)))
            experts.append(row)
            if rng.random() < 0.1:
                experts.append(row)  # exact duplicate
        n_pred = int(rng.integers(0, 14))
        ranks = rng.permutation(np.arange(1, n_pred + 1) * int(rng.integers(1, 3)))
        for r in ranks:
            e = tuple(int(x) for x in rng.integers(-2, 3, dim))
            predictions.append((vid, float(rng.integers(0, 40)) / 2, e, int(r)))
    for u in range(int(rng.integers(0, 3))):  # videos unknown to the experts
        predictions.append((f"u{u}", 1.0, (1,) * dim, 1))
    return experts, predictions


def assert_matches_reference(experts, predictions, s: PosterSettings) -> None:
    ex, mo, ids = build(experts, predictions, with_emb=True)
    res = evaluate_poster(ex, mo, len(ids), s)
    ref = reference_evaluate(
        experts,
        predictions,
        tau=s.time_tolerance_s,
        theta=s.min_cosine,
        min_expert=s.min_expert_frames,
        k_max=s.k_max,
        sweep_taus=s.sweep_time_tolerances_s,
        sweep_thetas=s.sweep_min_cosines,
    )
    for name, value in ref.metrics.items():
        got = res.metrics[name]
        assert (math.isnan(value) and math.isnan(got)) or got == pytest.approx(value, abs=1e-12), (
            name,
            got,
            value,
        )
    m = res.matches
    row_of = {int(v): i for i, v in enumerate(m.videos)}
    for code, vid in enumerate(ids):
        rv = ref.videos[vid]
        assert bool(res.eligible[code]) == rv.eligible, vid
        assert res.n_expert_frames[code] == rv.n_expert, vid
        assert res.n_model_frames[code] == rv.n_model, vid
        if not rv.eligible:
            assert code not in row_of
            continue
        i = row_of[code]
        assert m.first_hit_rank[i] == rv.first_hit_rank, vid
        assert m.n_matched_model_frames[i] == rv.n_matched_model, vid
        assert m.n_matched_expert_frames[i] == rv.n_matched_expert, vid
        assert m.best_model_rank[i] == rv.best_model_rank, vid
        for name in MATCH_FLOAT_FIELDS:  # every float field of VideoMatches
            got, want = getattr(m, name)[i], getattr(rv, name)
            assert (math.isnan(got) and math.isnan(want)) or got == want, (vid, name, got, want)
        assert MISS_REASONS[m.miss_reason[i]] == rv.miss_reason, vid
    if res.sweep is not None:
        for (tau, theta, k), want in ref.sweep.items():
            i = list(res.sweep.time_tolerances_s).index(tau)
            j = 0 if math.isnan(theta) else list(res.sweep.min_cosines).index(theta)
            assert res.sweep.recall[i, j, k - 1] == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("seed", range(40))
def test_core_equals_reference_on_random_sets(seed: int) -> None:
    rng = np.random.default_rng(seed)
    experts, predictions = random_set(rng)
    s = PosterSettings(
        time_tolerance_s=[0.0, 0.5, 3.0, 2.5][seed % 4],
        min_cosine=[0.5, 0.0, None, -0.5, 1.0][seed % 5],
        min_expert_frames=[1, 3, 5][seed % 3],
        k_max=[10, 1, 4][seed % 3],
        sweep_time_tolerances_s=(0.0, 1.0, 3.0),
        sweep_min_cosines=(0.0, 0.5, 0.75, 1.0),
    )
    assert_matches_reference(experts, predictions, s)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    tau=st.sampled_from([0.0, 0.5, 1.0, 3.0]),
    theta=st.sampled_from([None, 0.0, 0.5, 2 / 3, 1.0]),
    min_expert=st.integers(1, 6),
    k_max=st.integers(1, 12),
)
def test_core_equals_reference_hypothesis(seed, tau, theta, min_expert, k_max) -> None:
    rng = np.random.default_rng(seed)
    experts, predictions = random_set(rng, n_videos=int(rng.integers(1, 8)), dim=2)
    s = PosterSettings(
        tau,
        theta,
        min_expert,
        k_max,
        sweep_time_tolerances_s=(0.5, tau),
        sweep_min_cosines=(0.0, 0.5, 1.0),
    )
    assert_matches_reference(experts, predictions, s)


def test_shuffling_rows_changes_nothing() -> None:
    rng = np.random.default_rng(7)
    experts, predictions = random_set(rng, n_videos=30)
    s = PosterSettings(sweep_time_tolerances_s=(0.0, 3.0), min_expert_frames=3)
    ex, mo, ids = build(experts, predictions)
    base = evaluate_poster(ex, mo, len(ids), s)
    for shuffle_seed in range(3):
        r = np.random.default_rng(shuffle_seed)
        ex2, mo2, ids2 = build(
            list(r.permutation(np.array(experts, dtype=object))),
            list(r.permutation(np.array(predictions, dtype=object))),
        )
        other = evaluate_poster(ex2, mo2, len(ids2), s)
        assert other.metrics == base.metrics
        np.testing.assert_array_equal(other.sweep.recall, base.sweep.recall)


def test_recall_never_decreases_in_k() -> None:
    rng = np.random.default_rng(3)
    experts, predictions = random_set(rng, n_videos=40)
    ex, mo, ids = build(experts, predictions)
    res = evaluate_poster(ex, mo, len(ids), PosterSettings(min_expert_frames=2))
    assert np.all(np.diff(res.recall_curve) >= 0)


# ---- hand-computed cases ------------------------------------------------------------------

ONE = (1.0, 0.0, 0.0, 0.0)
ALL = (1.0, 1.0, 1.0, 1.0)  # cosine(ONE, ALL) = 0.5 exactly


def five_experts(vid="a", t0=10.0, emb=ALL):
    return [(vid, t0 + 20.0 * i, emb, 0) for i in range(5)]


def evaluate(experts, predictions, **kw):
    ex, mo, ids = build(experts, predictions)
    res = evaluate_poster(ex, mo, len(ids), PosterSettings(**kw))
    return res, list(ids)


def test_dt_exactly_tolerance_and_cosine_exactly_threshold_match() -> None:
    res, _ = evaluate(five_experts(), [("a", 13.0, ONE, 1)])
    assert res.metrics["recall_at_1"] == 1.0
    assert res.matches.best_dt[0] == 3.0 and res.matches.best_cosine[0] == 0.5


def test_just_over_the_time_tolerance_does_not_match() -> None:
    t = float(np.nextafter(13.0, 14.0))
    res, _ = evaluate(five_experts(), [("a", t, ONE, 1)], sweep_time_tolerances_s=(3.0, 4.0))
    assert res.metrics["recall_at_1"] == 0.0
    assert MISS_REASONS[res.matches.miss_reason[0]] == "time"
    # Without the sweep the pair lies outside every tolerance in use: no candidate, no cosine.
    res, _ = evaluate(five_experts(), [("a", t, ONE, 1)])
    assert MISS_REASONS[res.matches.miss_reason[0]] == "neither"
    assert np.isnan(res.matches.max_cosine[0]) and np.isnan(res.matches.nearest_cosine[0])


def test_cosine_just_under_the_threshold_does_not_match() -> None:
    res, _ = evaluate(
        five_experts(), [("a", 13.0, ONE, 1)], min_cosine=float(np.nextafter(0.5, 1.0))
    )
    assert res.metrics["recall_at_1"] == 0.0
    assert MISS_REASONS[res.matches.miss_reason[0]] == "similarity"
    just_under = (1.0, 1.0, 1.0, 1.0001)
    res, _ = evaluate(five_experts(emb=just_under), [("a", 13.0, ONE, 1)])
    assert res.metrics["recall_at_1"] == 0.0


def test_identical_vectors_have_cosine_exactly_one() -> None:
    v = (0.1234, -0.987, 3.3, 0.0001)
    res, _ = evaluate(five_experts(emb=v), [("a", 10.0, v, 1)], min_cosine=1.0)
    assert res.metrics["recall_at_1"] == 1.0


def test_zero_vector_matches_nothing() -> None:
    zero = (0.0, 0.0, 0.0, 0.0)
    res, _ = evaluate(five_experts(emb=zero), [("a", 10.0, ONE, 1)], min_cosine=-1.0)
    assert res.metrics["recall_at_10"] == 0.0
    assert np.isnan(res.matches.max_cosine[0])


def test_video_with_four_expert_frames_is_excluded() -> None:
    res, _ = evaluate(five_experts()[:4], [("a", 10.0, ALL, 1)])
    assert res.metrics["n_videos_eligible"] == 0 and res.metrics["n_videos_excluded"] == 1
    res, _ = evaluate(five_experts()[:4], [("a", 10.0, ALL, 1)], min_expert_frames=4)
    assert res.metrics["n_videos_eligible"] == 1


def test_exact_duplicate_expert_row_is_dropped_and_can_make_a_video_ineligible() -> None:
    experts = five_experts()[:4] + [five_experts()[0]]
    res, _ = evaluate(experts, [("a", 10.0, ALL, 1)])
    assert res.metrics["n_expert_duplicates_dropped"] == 1
    assert res.metrics["n_videos_eligible"] == 0
    # Same frame, another annotator (row key): not an exact duplicate.
    experts = five_experts()[:4] + [("a", 10.0, ALL, 1)]
    res, _ = evaluate(experts, [("a", 10.0, ALL, 1)])
    assert res.metrics["n_expert_duplicates_dropped"] == 0
    assert res.metrics["n_videos_eligible"] == 1


def test_eligible_video_without_predictions_is_a_miss() -> None:
    res, _ = evaluate(five_experts("a") + five_experts("b"), [("a", 10.0, ALL, 1)])
    assert res.metrics["recall_at_10"] == 0.5
    assert res.metrics["n_videos_without_predictions"] == 1
    reasons = sorted(MISS_REASONS[r] for r in res.matches.miss_reason)
    assert reasons == ["", "no_predictions"]


def test_match_only_at_rank_11_does_not_count() -> None:
    preds = [("a", 500.0 + r, ALL, r) for r in range(1, 11)] + [("a", 10.0, ALL, 11)]
    res, _ = evaluate(five_experts(), preds)
    assert res.metrics["recall_at_10"] == 0.0
    assert res.metrics["n_predictions_truncated"] == 1
    res, _ = evaluate(five_experts(), preds, k_max=11)
    assert res.metrics["recall_at_11"] == 1.0 and res.metrics["recall_at_10"] == 0.0


def test_string_ids_007_and_7_are_different_videos() -> None:
    res, ids = evaluate(five_experts("007"), [("7", 10.0, ALL, 1)])
    assert res.metrics["recall_at_10"] == 0.0
    assert res.metrics["n_prediction_videos_unknown"] == 1
    assert sorted(ids) == ["007", "7"]


def test_score_ranking_breaks_ties_by_earlier_timestamp() -> None:
    video = np.array([0, 0, 0, 1])
    score = np.array([0.5, 0.9, 0.5, 0.1])
    ts = np.array([4.0, 9.0, 2.0, 0.0])
    assert ranks_from_scores(video, score, ts).tolist() == [3, 1, 2, 1]


def test_ranks_are_taken_in_order_even_with_gaps() -> None:
    preds = [("a", 500.0, ALL, 7), ("a", 10.0, ALL, 30)]
    res, _ = evaluate(five_experts(), preds)
    assert res.matches.first_hit_rank[0] == 2 and res.metrics["mrr_at_10"] == 0.5


def test_precision_and_coverage_hand_computed() -> None:
    # Experts at 10, 30, 50, 70, 90; model frames at 10 (hit), 31 (hit), 500 (miss).
    preds = [("a", 10.0, ALL, 1), ("a", 31.0, ALL, 2), ("a", 500.0, ALL, 3)]
    res, _ = evaluate(five_experts(), preds)
    assert res.metrics["precision_at_10"] == pytest.approx(2 / 3)
    assert res.metrics["expert_coverage_at_10"] == pytest.approx(2 / 5)
    assert res.metrics["mrr_at_10"] == 1.0


def test_miss_reasons() -> None:
    far = (0.0, 1.0, 0.0, 0.0)  # cosine 0.5 with ALL, 0 with ONE
    orth = (0.0, 0.0, 1.0, -1.0)  # cosine 0 with ALL
    cases = {
        "similarity": [("a", 10.0, orth, 1)],
        "time": [("a", 500.0, ONE, 1)],
        "time+similarity": [("a", 10.0, orth, 1), ("a", 500.0, far, 2)],
        "neither": [("a", 500.0, orth, 1)],
    }
    for reason, preds in cases.items():
        # "time" needs a similar pair within the largest tolerance in use (here the sweep's).
        res, _ = evaluate(five_experts(), preds, sweep_time_tolerances_s=(3.0, 600.0))
        assert MISS_REASONS[res.matches.miss_reason[0]] == reason, reason


def test_time_only_matching_needs_no_embeddings() -> None:
    experts = [("a", 10.0 * i, None, 0) for i in range(1, 3)]
    preds = [("a", 12.0, None, 1)]
    ids = ["a", "a", "a"]
    codes, _ = pd.factorize(np.array(ids, dtype=object))
    ex = Frames(codes[:2].astype(np.int64), np.array([10.0, 20.0]))
    mo = Frames(codes[2:].astype(np.int64), np.array([12.0]), rank=np.array([1]))
    res = evaluate_poster(
        ex, mo, 1, PosterSettings(time_tolerance_s=2.0, min_cosine=None, min_expert_frames=1)
    )
    assert res.metrics["recall_at_1"] == 1.0
    assert experts and preds  # the rows above document the case


def test_tolerance_zero_matches_only_identical_timestamps() -> None:
    res, _ = evaluate(
        five_experts(), [("a", 10.0, ALL, 2), ("a", 10.5, ALL, 1)], time_tolerance_s=0.0
    )
    assert res.matches.first_hit_rank[0] == 2


def test_sweep_point_equals_full_evaluation() -> None:
    rng = np.random.default_rng(11)
    experts, predictions = random_set(rng, n_videos=25, dim=3)
    taus = (0.0, 0.5, 1.0, 3.0, 4.5)
    thetas = (0.0, 0.25, 0.5, 0.7, 1.0)
    ex, mo, ids = build(experts, predictions)
    full = evaluate_poster(
        ex,
        mo,
        len(ids),
        PosterSettings(min_expert_frames=2, sweep_time_tolerances_s=taus, sweep_min_cosines=thetas),
    )
    for i, tau in enumerate(taus):
        for j, theta in enumerate(thetas):
            point = evaluate_poster(
                ex,
                mo,
                len(ids),
                PosterSettings(time_tolerance_s=tau, min_cosine=theta, min_expert_frames=2),
            )
            np.testing.assert_array_equal(full.sweep.recall[i, j], point.recall_curve)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"time_tolerance_s": -1.0}, "time_tolerance_s"),
        ({"time_tolerance_s": float("nan")}, "time_tolerance_s"),
        ({"min_cosine": 1.5}, "min_cosine"),
        ({"min_expert_frames": 0}, "min_expert_frames"),
        ({"k_max": 0}, "k_max"),
        ({"sweep_time_tolerances_s": (-1.0,)}, "time_tolerances_s"),
    ],
)
def test_bad_settings_are_refused(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        PosterSettings(**kwargs)


def judged(
    experts: Frames, model: Frames, n_videos: int, s: PosterSettings
) -> tuple[PosterResult, FrameMatches]:
    """`evaluate_poster`, with the gallery's frame view judged in the same pass over the pairs
    (the engines' route: `score_set` hands every block of pairs to a `FrameJudge`)."""
    judge = FrameJudge()
    ids = np.arange(n_videos)
    partial = score_set(experts, model, s, video_ids=ids, identify=False, on_block=judge.add)
    result = poster_result(partial.videos, partial.sweep_hits, s)
    return result, judge.result(result.matches.videos)


def frame_matches_of(experts: Frames, model: Frames, result: PosterResult) -> FrameMatches:
    """Every considered model frame and every expert frame of the scored videos, judged in a
    second pass over the core's grouping and match rule (what `judged` does in one)."""
    s = result.settings
    keep = ~exact_duplicate_mask(experts)
    if s.min_cosine is None:
        experts = Frames(experts.video, experts.timestamp, None, None, experts.row_key)
        model = Frames(model.video, model.timestamp, None, model.rank, None)
    exp_grouped, mod_grouped, _, _ = group_for_matching(
        experts, model, result.n_videos, keep, s.k_max
    )
    judge = FrameJudge()
    match_videos(
        exp_grouped,
        mod_grouped,
        result.matches.videos,
        time_tolerance_s=s.time_tolerance_s,
        min_cosine=s.min_cosine,
        k_max=s.k_max,
        on_block=judge.add,
    )
    return judge.result(result.matches.videos)


def test_frames_judged_in_the_same_pass_equal_a_separate_pass() -> None:
    rng = np.random.default_rng(5)
    experts, predictions = random_set(rng, n_videos=30)
    ex, mo, ids = build(experts, predictions)
    s = PosterSettings(min_expert_frames=2, sweep_time_tolerances_s=(1.0,))
    together, frames = judged(ex, mo, len(ids), s)
    alone = evaluate_poster(ex, mo, len(ids), s)
    # The frame view is the gallery's (evaluator.report.gallery), never part of the core result.
    assert not hasattr(alone.matches, "frames") and frames is not None
    separate = frame_matches_of(ex, mo, alone)
    for name in separate.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(frames, name), getattr(separate, name), err_msg=name)
    # The frame view agrees with the video view: a video's first hit is its first "hit" frame.
    fm = frames
    first = {}
    for v, rank, status in zip(fm.model_video, fm.model_rank, fm.model_status, strict=True):
        if status == 0 and v not in first:
            first[v] = rank
    for v, fh in zip(together.matches.videos, together.matches.first_hit_rank, strict=True):
        assert first.get(v, 0) == fh
