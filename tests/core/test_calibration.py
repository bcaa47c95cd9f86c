"""The similarity calibration and the centring against naive loops (tests/reference/calibration)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluator.core.calibration import (
    COSINE_BINS,
    Calibration,
    ExpertPool,
    all_pair_cosines,
    calibrate,
    center_digest,
    centred,
    expert_mean,
    pair_cosines,
    pool_mask,
    unrelated_pair_count,
    unrelated_pairs,
    vector_sums,
)
from evaluator.core.frames import Frames
from tests.reference.calibration import (
    naive_cosine,
    naive_figures,
    naive_mean,
    naive_pool,
    naive_unrelated_cosines,
)

NO_CANDIDATES = np.zeros(COSINE_BINS.shape[0] - 1, dtype=np.int64)


def _naive_pairs(video: list[int]) -> list[tuple[int, int]]:
    return [(i, j) for i, j in itertools.combinations(range(len(video)), 2) if video[i] != video[j]]


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 6), min_size=0, max_size=6))
def test_every_unrelated_pair_once_in_order(sizes: list[int]) -> None:
    video = np.repeat(np.arange(len(sizes)), sizes)
    i, j, total = unrelated_pairs(video, max_pairs=10**9, seed=0)
    expected = _naive_pairs(video.tolist())
    assert list(zip(i.tolist(), j.tolist(), strict=True)) == expected
    assert total == len(expected) == unrelated_pair_count(video)


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 7), min_size=2, max_size=7),
    max_pairs=st.integers(1, 30),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_sample_is_the_seeded_choice_over_the_pair_numbers(
    sizes: list[int], max_pairs: int, seed: int
) -> None:
    video = np.repeat(np.arange(len(sizes)), sizes)
    expected = _naive_pairs(video.tolist())
    i, j, total = unrelated_pairs(video, max_pairs=max_pairs, seed=seed)
    assert total == len(expected)
    if total <= max_pairs:
        assert i.shape[0] == total
        return
    chosen = np.sort(np.random.default_rng(seed).choice(total, size=max_pairs, replace=False))
    assert list(zip(i.tolist(), j.tolist(), strict=True)) == [expected[k] for k in chosen]
    again = unrelated_pairs(video, max_pairs=max_pairs, seed=seed)
    assert again[0].tolist() == i.tolist() and again[1].tolist() == j.tolist()


def _rows(rng: np.random.Generator, n_videos: int, integer: bool) -> list[dict]:
    rows = []
    for v in range(n_videos):
        for _ in range(int(rng.integers(0, 6))):
            if integer:
                vec = rng.integers(-1, 3, size=4).astype(np.float32)
            else:
                vec = rng.normal(size=4).astype(np.float32)
            if rng.random() < 0.1:
                vec = np.zeros(4, dtype=np.float32)
            row = {
                "video_id": f"v{v}",
                "timestamp": float(rng.integers(0, 4)),
                "embedding": vec.tolist(),
                "annotator": f"a{int(rng.integers(2))}",
            }
            rows.append(row)
            if rng.random() < 0.2:
                rows.append(dict(row))
    return rows


def _core_pool(rows: list[dict], min_expert_frames: int) -> tuple[ExpertPool, np.ndarray]:
    """The core's pool of the rows, grouped by video (codes by first appearance)."""
    ids = list(dict.fromkeys(r["video_id"] for r in rows))
    video = np.array([ids.index(r["video_id"]) for r in rows], dtype=np.int64)
    keys = list(dict.fromkeys(r["annotator"] for r in rows))
    frames = Frames(
        video,
        np.array([r["timestamp"] for r in rows]),
        np.array([r["embedding"] for r in rows], dtype=np.float32).reshape(len(rows), 4),
        None,
        np.array([keys.index(r["annotator"]) for r in rows], dtype=np.int64),
    )
    mask = pool_mask(frames, len(ids), min_expert_frames)
    order = np.argsort(video[mask], kind="stable")
    assert frames.embedding is not None
    pool = ExpertPool(video[mask][order], frames.embedding[mask][order], NO_CANDIDATES)
    return pool, np.asarray(ids, dtype=object)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n_videos=st.integers(2, 8),
    min_cosine=st.sampled_from([-0.5, 0.0, 0.5, 0.7071067811865476, 1.0]),
    min_expert_frames=st.integers(1, 3),
)
def test_figures_equal_a_naive_loop_over_all_pairs(
    seed: int, n_videos: int, min_cosine: float, min_expert_frames: int
) -> None:
    # Small integer entries: every dot product is exact, and values on the thresholds occur.
    rng = np.random.default_rng(seed)
    rows = _rows(rng, n_videos, integer=True)
    if not rows:
        return
    pool, _ = _core_pool(rows, min_expert_frames)
    naive = naive_unrelated_cosines(naive_pool(rows, min_expert_frames), None)
    got = calibrate(pool, min_cosine=min_cosine, center=None, max_pairs=10**6, seed=0)
    assert got.n_pairs == got.n_pairs_total == len(naive)
    assert not got.sampled
    if not naive:
        assert np.isnan(got.false_match_rate) and np.isnan(got.q99)
        return
    rate, q99, median = naive_figures(naive, min_cosine)
    assert got.false_match_rate == rate
    assert got.q99 == q99 and got.median == median
    assert got.unrelated_counts.sum() == len(naive)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), n_videos=st.integers(2, 8), max_pairs=st.integers(1, 12))
def test_centred_and_sampled_figures_equal_a_loop_over_the_same_pairs(
    seed: int, n_videos: int, max_pairs: int
) -> None:
    rng = np.random.default_rng(seed)
    rows = _rows(rng, n_videos, integer=False)
    if not rows:
        return
    pool, ids = _core_pool(rows, 1)
    if pool.video.shape[0] == 0:
        return
    mean = expert_mean([vector_sums(pool.video, pool.vectors, ids)], 4)
    reference_pool = naive_pool(rows, 1)
    np.testing.assert_allclose(mean, naive_mean(reference_pool), rtol=0, atol=1e-12)
    got = calibrate(pool, min_cosine=0.1, center=mean, max_pairs=max_pairs, seed=seed)
    # The same pairs by hand: centre, drop zero vectors, number the pairs, take the sample.
    frames = [(v, [x - c for x, c in zip(vec, mean, strict=True)]) for v, vec in reference_pool]
    frames = [(v, vec) for v, vec in frames if any(x != 0 for x in vec)]
    pairs = _naive_pairs([v for v, _ in frames])
    assert got.n_pairs_total == len(pairs)
    if not pairs:
        return
    if len(pairs) > max_pairs:
        index = np.sort(np.random.default_rng(seed).choice(len(pairs), max_pairs, replace=False))
        pairs = [pairs[k] for k in index]
        assert got.sampled and got.n_pairs == max_pairs
    cosines = [naive_cosine(frames[i][1], frames[j][1]) for i, j in pairs]
    rate, q99, median = naive_figures(cosines, 0.1)
    assert got.false_match_rate == rate
    assert got.q99 == pytest.approx(q99, abs=1e-12)
    assert got.median == pytest.approx(median, abs=1e-12)


def test_centring_by_hand() -> None:
    # Video a: [2, 0], [0, 2] and a zero vector (kept: counts for eligibility, not the mean);
    # video b: [2, 2], [4, 4] and a duplicate row; video c has one frame (ineligible).
    rows = [
        {"video_id": "a", "timestamp": 0.0, "embedding": [2, 0], "annotator": "x"},
        {"video_id": "a", "timestamp": 5.0, "embedding": [0, 0], "annotator": "x"},
        {"video_id": "a", "timestamp": 9.0, "embedding": [0, 2], "annotator": "x"},
        {"video_id": "b", "timestamp": 1.0, "embedding": [2, 2], "annotator": "x"},
        {"video_id": "b", "timestamp": 1.0, "embedding": [2, 2], "annotator": "x"},
        {"video_id": "b", "timestamp": 3.0, "embedding": [4, 4], "annotator": "x"},
        {"video_id": "c", "timestamp": 1.0, "embedding": [100, 0], "annotator": "x"},
    ]
    video = np.array([0, 0, 0, 1, 1, 1, 2])
    frames = Frames(
        video,
        np.array([r["timestamp"] for r in rows]),
        np.array([r["embedding"] for r in rows], dtype=np.float32),
        None,
        np.zeros(7, dtype=np.int64),
    )
    mask = pool_mask(frames, 3, min_expert_frames=2)
    assert mask.tolist() == [True, False, True, True, False, True, False]
    assert frames.embedding is not None
    sums = vector_sums(video[mask], frames.embedding[mask], np.array(["a", "b", "c"], object))
    mean = expert_mean([sums], 2)
    assert mean.tolist() == [2.0, 2.0]  # ([2,0] + [0,2] + [2,2] + [4,4]) / 4
    assert centred(frames.embedding[:4], mean).tolist() == [
        [0.0, -2.0],
        [0.0, 0.0],  # a zero vector stays zero
        [-2.0, 0.0],
        [0.0, 0.0],  # [2, 2] - mean: zero, so it has no cosine and leaves the pairs
    ]
    pool = ExpertPool(video[mask], frames.embedding[mask], NO_CANDIDATES)
    raw = calibrate(pool, min_cosine=0.5, center=None, max_pairs=100, seed=0)
    # a x b: 4 pairs, each cosine 1/sqrt(2).
    assert (raw.n_pairs, raw.false_match_rate) == (4, 1.0)
    assert raw.median == pytest.approx(2**-0.5, abs=1e-15)
    centre = calibrate(pool, min_cosine=0.5, center=mean, max_pairs=100, seed=0)
    # [0,-2] and [-2,0] against [2,2]: cosine -1/sqrt(2); [2,2]-mean = 0 is left out.
    assert (centre.n_frames, centre.n_pairs, centre.false_match_rate) == (3, 2, 0.0)
    assert centre.q99 == pytest.approx(-(2**-0.5), abs=1e-15)


def test_a_cosine_exactly_on_min_cosine_passes() -> None:
    # [1,0,0,0] . [1,1,1,1] = 1, norms 1 and 2: exactly 0.5.
    pool = ExpertPool(
        np.array([0, 1]),
        np.array([[1, 0, 0, 0], [1, 1, 1, 1]], dtype=np.float32),
        NO_CANDIDATES,
    )
    on = calibrate(pool, min_cosine=0.5, center=None, max_pairs=10, seed=0)
    above = calibrate(pool, min_cosine=np.nextafter(0.5, 1.0), center=None, max_pairs=10, seed=0)
    assert (on.false_match_rate, above.false_match_rate) == (1.0, 0.0)


def _with_rate(rate: float) -> Calibration:
    z = NO_CANDIDATES
    return Calibration(0.5, 8, 4, 4, False, rate, 0.9, 0.5, z, z)


@pytest.mark.parametrize(
    ("rate", "warn_rate", "warns"),
    [
        (0.25, 0.25, False),
        (0.25, 0.2499, True),
        (0.0, 0.0, False),
        (0.01, 0.0, True),
        (1.0, 1.0, False),
        (float("nan"), 0.05, False),
    ],
)
def test_warns_only_above_warn_rate(rate: float, warn_rate: float, warns: bool) -> None:
    assert _with_rate(rate).warns(warn_rate) is warns


def test_the_mean_is_the_same_bits_however_the_videos_are_split() -> None:
    rng = np.random.default_rng(7)
    video = np.repeat(np.arange(40), rng.integers(1, 6, size=40))
    vectors = rng.normal(size=(video.shape[0], 16)).astype(np.float32) * 1e3
    ids = np.array([f"v{i:02d}" for i in range(40)], dtype=object)
    whole = expert_mean([vector_sums(video, vectors, ids)], 16)
    for seed in range(5):
        part_of = np.random.default_rng(seed).integers(0, 4, size=40)[video]
        parts = [vector_sums(video[part_of == p], vectors[part_of == p], ids) for p in range(4)]
        np.random.default_rng(seed).shuffle(parts)
        assert expert_mean(parts, 16).tobytes() == whole.tobytes()


def test_center_digest_changes_only_with_centring() -> None:
    d = "ab" * 32
    assert center_digest(d, "off") == d
    assert center_digest(d, "experts") != d and len(center_digest(d, "experts")) == 64


def test_a_frame_without_a_vector_is_left_out_like_a_zero_vector() -> None:
    # A NaN row (a frame that was not embedded) and a zero row: neither is in the pool.
    embedding = np.array([[1, 0], [np.nan, np.nan], [0, 0], [0, 1], [1, 1]], dtype=np.float32)
    frames = Frames(np.array([0, 0, 0, 1, 1]), np.arange(5.0), embedding)
    assert pool_mask(frames, 2, min_expert_frames=2).tolist() == [True, False, False, True, True]


def test_all_pairs_by_blocks_equal_the_pairs_one_by_one() -> None:
    # More frames than one block of the matrix product, videos of 1-9 frames.
    rng = np.random.default_rng(3)
    video = np.repeat(np.arange(200), rng.integers(1, 10, size=200))
    vectors = rng.normal(size=(video.shape[0], 3))
    i, j, total = unrelated_pairs(video, max_pairs=10**9, seed=0)
    blocks = all_pair_cosines(vectors, video)
    assert blocks.shape == (total,) and video.shape[0] > 512
    np.testing.assert_allclose(blocks, pair_cosines(vectors, i, j), rtol=0, atol=1e-12)
