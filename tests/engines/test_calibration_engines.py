"""``matching.center`` and the calibration on the local engine: in memory and streamed agree."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluator.core.calibration import COSINE_BINS
from evaluator.core.poster import PosterSettings
from evaluator.engines.local import Scored
from evaluator.errors import InputError
from evaluator.tasks.poster_similarity import SimilarityOptions, calibration_of
from tests.engines import streamkit
from tests.engines.streamkit import SETTINGS, arrow_table, assert_same, random_tables
from tests.reference.calibration import naive_cosine, naive_mean, naive_pool


def _whole(root: Path, exp: pa.Table, pred: pa.Table, s: PosterSettings, center: str) -> Scored:
    return streamkit.score_whole(root, exp, pred, s, judge_frames=True, center=center)


def _streamed(
    root: Path, exp: pa.Table, pred: pa.Table, s: PosterSettings, center: str, budget_mb: float
) -> Scored:
    return streamkit.score_streamed(
        root,
        exp,
        pred,
        s,
        n_parts=(3, 2),
        seed=1,
        budget_mb=budget_mb,
        want_images=False,
        center=center,
    )


def _hand_case() -> tuple[pa.Table, pa.Table]:
    experts = pd.DataFrame(
        {
            "video_id": ["a", "a", "a", "b", "b", "b", "c"],
            "timestamp": [0.0, 5.0, 9.0, 1.0, 1.0, 3.0, 1.0],
            "embedding": [[2, 0], [0, 0], [0, 2], [2, 2], [2, 2], [4, 4], [100, 0]],
        }
    )
    predictions = pd.DataFrame(
        {
            "video_id": ["a", "b"],
            "timestamp": [0.0, 3.0],
            "rank": [1, 1],
            "embedding": [[3, 2], [1, 1]],
        }
    )
    return arrow_table(experts, dim=2), arrow_table(predictions, dim=2)


HAND = PosterSettings(time_tolerance_s=1.0, min_cosine=0.5, min_expert_frames=2, k_max=1)


def test_centring_by_hand_in_memory_and_streamed(tmp_path: Path) -> None:
    exp, pred = _hand_case()
    off = _whole(tmp_path, exp, pred, HAND, "off")
    # Off: video a's [3,2] against [2,0] at dt 0 has cosine 6/(2 sqrt 13) = 0.83: a hit; video
    # b's [1,1] against [4,4] at dt 0: cosine 1, a hit.
    assert off.center is None
    assert off.finished.result.metrics["recall_at_1"] == 1.0
    for name, budget in (("whole", None), ("spilled", 0.0005)):
        root = tmp_path / name
        root.mkdir()
        if budget is None:
            on = _whole(root, exp, pred, HAND, "experts")
        else:
            on = _streamed(root, exp, pred, HAND, "experts", budget)
            assert on.stats is not None and on.stats.spilled
        # Mean of the pool [2,0], [0,2], [2,2], [4,4] = [2,2] (zero vector, duplicate and the
        # ineligible video c left out). Centred: a's [3,2] -> [1,0] against [0,-2]: cosine 0,
        # a miss; b's [1,1] -> [-1,-1] against [2,2]: cosine -1, a miss.
        assert on.center is not None and on.center.tolist() == [2.0, 2.0]
        assert on.finished.result.metrics["recall_at_1"] == 0.0
        calibration = calibration_of(on, SimilarityOptions(center="experts"))
        assert calibration is not None
        assert (calibration.n_frames, calibration.n_pairs, calibration.false_match_rate) == (
            3,
            2,
            0.0,
        )
        # The time-candidate pairs as matched: (a: [1,0], [0,-2]) -> 0; (b: [-1,-1], [2,2])
        # -> -1 ([2,2] centred at t=1 is zero and has no cosine; dt 2 > 1 anyway).
        expected = np.histogram([0.0, -1.0], COSINE_BINS)[0]
        assert calibration.candidate_counts.tolist() == expected.tolist()
    assert off.finished.digest == on.finished.digest  # the engines' digest: vectors as read


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31),
    n_videos=st.integers(2, 30),
    budget_mb=st.sampled_from([0.004, 64.0]),
    center=st.sampled_from(["off", "experts"]),
)
def test_streamed_equals_in_memory_with_calibration(
    seed: int, n_videos: int, budget_mb: float, center: str
) -> None:
    experts, preds = random_tables(seed, n_videos, images=False)
    exp, pred = arrow_table(experts), arrow_table(preds)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "w").mkdir()
        (root / "s").mkdir()
        try:
            whole = _whole(root / "w", exp, pred, SETTINGS, center)
        except InputError:
            return  # no eligible video: refused (the streaming tests check the same refusal)
        streamed = _streamed(root / "s", exp, pred, SETTINGS, center, budget_mb)
    assert_same(whole.finished, streamed.finished, "finished")
    assert_same(whole.gallery, streamed.gallery, "gallery")
    assert_same(whole.center, streamed.center, "center")
    options = SimilarityOptions(center=center, max_pairs=25, seed=seed)
    a, b = calibration_of(whole, options), calibration_of(streamed, options)
    assert_same(a, b, "calibration")
    # Against the naive loop over every pair (when they are all computed).
    rows = experts.to_dict("records")
    pool = naive_pool(rows, SETTINGS.min_expert_frames)
    if not pool or a is None or a.sampled:
        return
    mean = naive_mean(pool) if center == "experts" else None
    if mean is not None:
        np.testing.assert_allclose(whole.center, mean, rtol=0, atol=1e-12)
    assert a.n_pairs == _count_unrelated(pool, whole.center)
    if a.n_pairs:
        frames = [
            (v, np.asarray(x) - (0 if whole.center is None else whole.center)) for v, x in pool
        ]
        frames = [(v, x) for v, x in frames if np.any(x != 0)]
        cos = [
            naive_cosine(frames[i][1], frames[j][1])
            for i in range(len(frames))
            for j in range(i + 1, len(frames))
            if frames[i][0] != frames[j][0]
        ]
        assert a.false_match_rate == sum(c >= SETTINGS.min_cosine for c in cos) / len(cos)


def _count_unrelated(pool: list, center: np.ndarray | None) -> int:
    kept = [v for v, x in pool if np.any(np.asarray(x) - (0 if center is None else center) != 0)]
    return sum(1 for i in range(len(kept)) for j in range(i + 1, len(kept)) if kept[i] != kept[j])
