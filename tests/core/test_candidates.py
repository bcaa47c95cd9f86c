"""Frames left out by the candidate filter change no number: results with and without it agree."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluator.core.candidates import candidate_window_s, frames_to_embed
from evaluator.core.frames import Frames, exact_duplicate_mask
from evaluator.core.poster import PosterResult, PosterSettings
from evaluator.report.gallery import FrameMatches
from tests.core.test_poster import judged


def random_case(rng: np.random.Generator, n_videos: int = 10, dim: int = 3):
    """Expert and model frames whose vectors are a function of the frame shown (``content``).

    Rows repeat earlier rows (same frame: exact duplicates) and share (video, time, key) with
    other frames, some of which happen to have equal vectors (duplicates only by their vectors).
    """
    palette = rng.integers(-2, 3, (40, dim)).astype(np.float32)
    palette[1] = palette[0]  # two frames with equal vectors
    palette[2] = 0.0
    ev, et, ek, ec = [], [], [], []
    for v in range(n_videos):
        for _ in range(int(rng.integers(0, 9))):
            row = (
                v,
                float(rng.integers(0, 60)) / 2,
                int(rng.integers(0, 2)),
                int(rng.integers(0, 40)),
            )
            for _ in range(1 + int(rng.random() < 0.15)):
                ev.append(row[0]), et.append(row[1]), ek.append(row[2]), ec.append(row[3])
            if rng.random() < 0.15:  # same (video, time, key), another frame
                other = int(rng.choice([0, 1, int(rng.integers(0, 40))]))
                ev.append(v), et.append(row[1]), ek.append(row[2]), ec.append(other)
    content = np.array(ec, dtype=np.int64)
    experts = Frames(
        video=np.array(ev, dtype=np.int64),
        timestamp=np.array(et, dtype=np.float64),
        embedding=palette[content].reshape(len(content), dim),
        row_key=np.array(ek, dtype=np.int64),
    )
    mv, mt, mr = [], [], []
    for v in range(n_videos + 2):  # the last two videos are unknown to the experts
        n = int(rng.integers(0, 15))
        for r in rng.permutation(n) + 1:
            mv.append(v), mt.append(float(rng.integers(0, 60)) / 2), mr.append(int(r))
    model = Frames(
        video=np.array(mv, dtype=np.int64),
        timestamp=np.array(mt, dtype=np.float64),
        embedding=palette[rng.integers(0, 40, len(mv))].reshape(len(mv), dim),
        rank=np.array(mr, dtype=np.int64),
    )
    return experts, model, content, n_videos + 2


def assert_same_result(
    a: PosterResult, b: PosterResult, a_frames: FrameMatches, b_frames: FrameMatches
) -> None:
    assert a.metrics.keys() == b.metrics.keys()
    for k in a.metrics:
        np.testing.assert_equal(a.metrics[k], b.metrics[k], err_msg=k)
    np.testing.assert_equal(a.recall_curve, b.recall_curve)
    np.testing.assert_equal(a.eligible, b.eligible)
    for f in dataclasses.fields(a.matches):
        if f.name != "frames":
            va, vb = getattr(a.matches, f.name), getattr(b.matches, f.name)
            np.testing.assert_equal(va, vb, err_msg=f.name)
    for f in dataclasses.fields(a_frames):
        va, vb = getattr(a_frames, f.name), getattr(b_frames, f.name)
        np.testing.assert_equal(va, vb, err_msg=f.name)
    assert (a.sweep is None) == (b.sweep is None)
    if a.sweep is not None:
        np.testing.assert_equal(a.sweep.recall, b.sweep.recall)


def check_filter(rng: np.random.Generator, s: PosterSettings) -> None:
    experts, model, content, n_videos = random_case(rng)
    need = frames_to_embed(
        experts,
        model,
        n_videos,
        expert_content=content,
        k_max=s.k_max,
        min_expert_frames=s.min_expert_frames,
        window_s=s.candidate_window_s,
    )
    assert experts.embedding is not None and model.embedding is not None
    left_out = Frames(
        experts.video,
        experts.timestamp,
        np.where(need.experts[:, None], experts.embedding, 0.0).astype(np.float32),
        None,
        experts.row_key,
    )
    model_left_out = dataclasses.replace(
        model, embedding=np.where(need.model[:, None], model.embedding, 0.0).astype(np.float32)
    )
    full = judged(experts, model, n_videos, s)
    filtered = judged(left_out, model_left_out, n_videos, s)
    assert_same_result(full[0], filtered[0], full[1], filtered[1])


SWEEPS = [(), (0.0, 1.0, 2.5, 6.0)]


@pytest.mark.parametrize("seed", range(40))
def test_left_out_frames_change_nothing(seed: int) -> None:
    rng = np.random.default_rng(seed)
    s = PosterSettings(
        time_tolerance_s=float(rng.choice([0.0, 1.0, 2.5])),
        min_cosine=float(rng.choice([-0.2, 0.0, 0.5, 1.0])),
        min_expert_frames=int(rng.integers(1, 5)),
        k_max=int(rng.integers(1, 6)),
        sweep_time_tolerances_s=SWEEPS[seed % 2],
    )
    check_filter(rng, s)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    tau=st.sampled_from([0.0, 0.5, 3.0]),
    theta=st.sampled_from([0.0, 0.3, 0.5, 0.9]),
    min_expert=st.integers(1, 4),
    k_max=st.integers(1, 4),
    sweep=st.sampled_from(SWEEPS),
)
def test_left_out_frames_change_nothing_hypothesis(seed, tau, theta, min_expert, k_max, sweep):
    s = PosterSettings(
        time_tolerance_s=tau,
        min_cosine=theta,
        min_expert_frames=min_expert,
        k_max=k_max,
        sweep_time_tolerances_s=tuple(sorted({*sweep, tau})) if sweep else (),
    )
    check_filter(np.random.default_rng(seed), s)


def naive_needed(experts, model, content, n_videos, *, k_max, min_expert, window):
    """Plain loops: sure duplicates dropped, then pairs within the window of maybe-eligible
    videos; rows whose duplicate status depends on vectors always; classes extended."""
    n_e = len(experts)
    seen: dict[tuple, int] = {}
    kept = []
    for i in range(n_e):
        key = (experts.video[i], experts.timestamp[i], experts.row_key[i], content[i])
        if key not in seen:
            seen[key] = i
            kept.append(i)
    groups: dict[tuple, set] = {}
    for i in kept:
        groups.setdefault((experts.video[i], experts.timestamp[i], experts.row_key[i]), set()).add(
            i
        )
    need_e = np.zeros(n_e, dtype=bool)
    for rows in groups.values():
        if len(rows) > 1:
            need_e[list(rows)] = True
    count = [sum(1 for i in kept if experts.video[i] == v) for v in range(n_videos)]
    need_m = np.zeros(len(model), dtype=bool)
    for v in range(n_videos):
        if count[v] < min_expert:
            continue
        ms = sorted((model.rank[j], j) for j in range(len(model)) if model.video[j] == v)
        for _, j in ms[:k_max]:
            for i in kept:
                if (
                    experts.video[i] == v
                    and abs(model.timestamp[j] - experts.timestamp[i]) <= window
                ):
                    need_m[j] = need_e[i] = True
    for i in range(n_e):
        key = (experts.video[i], experts.timestamp[i], experts.row_key[i], content[i])
        need_e[i] = need_e[i] or need_e[seen[key]]
    return need_e, need_m


@pytest.mark.parametrize("seed", range(15))
def test_needed_frames_equal_a_naive_loop(seed: int) -> None:
    """Embedded == needed: the filter keeps no frame beyond what the plain loops need."""
    rng = np.random.default_rng(100 + seed)
    experts, model, content, n_videos = random_case(rng)
    k_max, min_expert, window = int(rng.integers(1, 5)), int(rng.integers(1, 5)), 2.5
    need = frames_to_embed(
        experts,
        model,
        n_videos,
        expert_content=content,
        k_max=k_max,
        min_expert_frames=min_expert,
        window_s=window,
    )
    ref_e, ref_m = naive_needed(
        experts, model, content, n_videos, k_max=k_max, min_expert=min_expert, window=window
    )
    np.testing.assert_array_equal(need.experts, ref_e)
    np.testing.assert_array_equal(need.model, ref_m)


def test_centring_keeps_every_expert_frame_of_the_videos_that_can_be_eligible() -> None:
    # Video 0: 3 expert frames far from the one model frame; video 1: 1 expert frame (ineligible).
    experts = Frames(
        video=np.array([0, 0, 0, 1]),
        timestamp=np.array([0.0, 50.0, 100.0, 0.0]),
        row_key=np.zeros(4, dtype=np.int64),
    )
    model = Frames(video=np.array([0, 1]), timestamp=np.array([1.0, 0.0]), rank=np.array([1, 1]))
    kw = dict(expert_content=np.arange(4), k_max=10, min_expert_frames=2, window_s=3.0)
    plain = frames_to_embed(experts, model, 2, **kw)
    np.testing.assert_array_equal(plain.experts, [True, False, False, False])
    np.testing.assert_array_equal(plain.model, [True, False])
    centred = frames_to_embed(experts, model, 2, keep_all_experts=True, **kw)
    np.testing.assert_array_equal(centred.experts, [True, True, True, False])
    np.testing.assert_array_equal(centred.model, [True, False])
    assert plain.n_rows_left_out == 4 and centred.n_rows_left_out == 2


def test_window_is_the_largest_tolerance_in_use() -> None:
    assert candidate_window_s(3.0, ()) == 3.0
    assert candidate_window_s(3.0, (0.0, 10.0)) == 10.0
    assert (
        PosterSettings(time_tolerance_s=2.0, sweep_time_tolerances_s=(1.0,)).candidate_window_s
        == 2.0
    )


def test_duplicates_decided_by_vectors_are_embedded() -> None:
    # Same (video, time, key) showing two files: duplicates only if their vectors are equal.
    experts = Frames(
        video=np.zeros(2, dtype=np.int64),
        timestamp=np.array([5.0, 5.0]),
        embedding=np.ones((2, 2), dtype=np.float32),
        row_key=np.zeros(2, dtype=np.int64),
    )
    model = Frames(video=np.array([0]), timestamp=np.array([500.0]), rank=np.array([1]))
    need = frames_to_embed(
        experts,
        model,
        1,
        expert_content=np.array([0, 1]),
        k_max=1,
        min_expert_frames=2,
        window_s=1.0,
    )
    np.testing.assert_array_equal(need.experts, [True, True])
    assert exact_duplicate_mask(experts).tolist() == [False, True]
