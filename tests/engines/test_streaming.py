"""The streaming local engine equals an in-memory evaluation of the same rows, bit for bit.

The in-memory side loads one file holding every row (in part-file order) whole and scores it
as one unit (`score_poster`); the streaming side reads the same rows as shuffled part files
through hash buckets on disk with a budget so small that it cuts them into many units.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluator.core.bootstrap import bootstrap_mean_ci
from evaluator.core.poster import PosterSettings
from evaluator.engines.local import Scored, score_poster
from evaluator.engines.streaming import StreamedPoster, stream_poster
from evaluator.errors import InputError
from evaluator.io.partition import plan_table
from evaluator.io.poster import load_poster_inputs
from evaluator.io.sources import resolve_source
from evaluator.report.gallery import merge_scored, prune_galleries
from evaluator.report.tables import match_table
from tests.engines.streamkit import (
    SETTINGS,
    arrow_table,
    assert_same,
    random_tables,
    score_streamed,
    score_whole,
    scored_units,
    write_parts,
)


def _in_memory(
    exp: pa.Table, pred: pa.Table, root: Path, cap: int | None, judge: bool = True
) -> Scored:
    return score_whole(root, exp, pred, SETTINGS, judge_frames=judge, max_gallery_videos=cap)


def _streamed(
    exp: pa.Table, pred: pa.Table, root: Path, n_parts: int, seed: int, budget_mb: float, cap
) -> Scored:
    return score_streamed(
        root,
        exp,
        pred,
        SETTINGS,
        n_parts=(n_parts, n_parts),
        seed=seed,
        budget_mb=budget_mb,
        want_images=True,
        max_gallery_videos=cap,
    )


def assert_same_evaluation(a: Scored, b: Scored) -> None:
    """Numbers, sweep, gallery, digest, match table and bootstrap intervals all equal."""
    assert_same(a.finished, b.finished, "finished")
    assert_same(a.gallery, b.gallery, "gallery")  # the gallery left the core result
    assert a.embedding_dim == b.embedding_dim
    assert_same(
        match_table(a.finished.result, a.finished.video_ids),
        match_table(b.finished.result, b.finished.video_ids),
        "match_table",
    )
    hits_a = a.finished.result.hits.astype(np.float64)
    hits_b = b.finished.result.hits.astype(np.float64)
    if hits_a.shape[0]:
        ci_a = bootstrap_mean_ci(hits_a, n_resamples=200, confidence=0.9, seed=4)
        ci_b = bootstrap_mean_ci(hits_b, n_resamples=200, confidence=0.9, seed=4)
        assert_same(ci_a, ci_b, "bootstrap")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31),
    n_videos=st.integers(1, 45),
    n_parts=st.integers(1, 4),
    budget_mb=st.sampled_from([0.004, 0.02, 64.0]),
    cap=st.sampled_from([None, 3]),
    dtype=st.sampled_from(["float16", "float32", "float64"]),
    fixed=st.booleans(),
    int_ids=st.booleans(),
)
def test_streaming_equals_in_memory(
    seed: int,
    n_videos: int,
    n_parts: int,
    budget_mb: float,
    cap: int | None,
    dtype: str,
    fixed: bool,
    int_ids: bool,
) -> None:
    experts, preds = random_tables(seed, n_videos, int_ids=int_ids)
    exp = arrow_table(experts, dtype=dtype, fixed=fixed)
    pred = arrow_table(preds, dtype=dtype, fixed=fixed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        try:
            whole = _in_memory(exp, pred, root, cap)
        except InputError as refused:
            # The same refusal (the message after the file name), whichever engine reads.
            reason = str(refused).split(": ", 1)[1]
            with pytest.raises(InputError, match=re.escape(reason)):
                _streamed(exp, pred, root, n_parts, seed, budget_mb, cap)
            return
        streamed = _streamed(exp, pred, root, n_parts, seed, budget_mb, cap)
    assert_same_evaluation(whole, streamed)
    stats = streamed.stats
    assert stats is not None
    assert sum(stats.unit_rows) == exp.num_rows + pred.num_rows
    if budget_mb == 64.0:
        assert not stats.spilled and len(stats.unit_rows) == 1


def _stream_dir(root: Path, settings: PosterSettings, **kwargs: Any) -> StreamedPoster:
    """`stream_poster` over the part folders ``root/experts`` and ``root/predictions``."""
    return stream_poster(
        resolve_source(root / "experts", "experts"),
        resolve_source(root / "predictions", "predictions"),
        settings,
        **kwargs,
    )


def _many_videos(n_videos: int, seed: int = 5) -> tuple[pa.Table, pa.Table]:
    experts, preds = random_tables(seed, n_videos, images=False)
    return arrow_table(experts), arrow_table(preds)


def test_many_units_and_none_larger_than_the_budget(tmp_path: Path) -> None:
    exp, pred = _many_videos(400)
    write_parts(exp, tmp_path / "experts", 3, 1)
    write_parts(pred, tmp_path / "predictions", 3, 2)
    budget = 40_000  # bytes: a few dozen rows per unit
    streamed = _stream_dir(
        tmp_path,
        SETTINGS,
        budget_bytes=budget,
        temp_dir=tmp_path,
    )
    stats = streamed.stats
    per_row = max(streamed.experts.row_bytes, streamed.predictions.row_bytes)
    assert stats.max_unit_rows == budget // per_row
    assert stats.spilled and stats.n_buckets > 1
    assert len(stats.unit_rows) >= (exp.num_rows + pred.num_rows) // stats.max_unit_rows
    assert max(stats.unit_rows) <= stats.max_unit_rows
    assert sum(stats.unit_rows) == exp.num_rows + pred.num_rows
    # Every row of a video is in one unit: the number of videos matches the in-memory count.
    whole = _in_memory(exp, pred, tmp_path, None, judge=False)
    assert_same(whole.finished, streamed.finished, "finished")
    assert_same(whole.gallery, streamed.gallery, "gallery")


def _with_big_video(root: Path, n_videos: int, repeat: int) -> tuple[pa.Table, pa.Table, int]:
    """Random tables whose first video has ``repeat`` times its expert rows, as part files
    under ``root``; returns the tables and the big video's added rows."""
    experts, preds = random_tables(9, n_videos, images=False)
    big = experts[experts.video_id == experts.video_id.iloc[0]].copy()
    big = big.loc[big.index.repeat(repeat)].assign(timestamp=lambda d: np.arange(len(d)) / 2)
    experts = pd.concat([experts, big], ignore_index=True)
    exp, pred = arrow_table(experts), arrow_table(preds)
    write_parts(exp, root / "experts", 2, 1)
    write_parts(pred, root / "predictions", 2, 2)
    return exp, pred, len(big)


def test_one_video_larger_than_the_budget_is_one_unit(tmp_path: Path) -> None:
    """A video cannot be split: it is scored whole (the only unit over the budget)."""
    exp, pred, big = _with_big_video(tmp_path, n_videos=30, repeat=40)
    streamed = _stream_dir(
        tmp_path,
        SETTINGS,
        budget_bytes=20_000,
        temp_dir=tmp_path,
    )
    stats = streamed.stats
    over = [r for r in stats.unit_rows if r > stats.max_unit_rows]
    assert len(over) == 1 and over[0] >= big
    whole = _in_memory(exp, pred, tmp_path, None, judge=False)
    assert_same(whole.finished, streamed.finished, "finished")
    assert_same(whole.gallery, streamed.gallery, "gallery")


def test_a_video_split_over_parts_is_scored_once(tmp_path: Path) -> None:
    """Video 'x' has expert rows in parts 0 and 2 and predictions in parts 1 and 2: its
    first hit needs rows from both expert parts, and it is counted once."""
    vec = [1.0, 0.0, 0.0, 0.0]
    parts = [
        {"video_id": ["x", "y"], "timestamp": [0.0, 1.0], "embedding": [vec, vec]},
        {"video_id": ["y", "y"], "timestamp": [2.0, 3.0], "embedding": [vec, vec]},
        {"video_id": ["x"], "timestamp": [10.0], "embedding": [vec]},
    ]
    preds = [
        {"video_id": ["y"], "timestamp": [50.0], "rank": [1], "embedding": [vec]},
        {"video_id": ["x"], "timestamp": [40.0], "rank": [1], "embedding": [vec]},
        {"video_id": ["x", "y"], "timestamp": [13.0, 2.0], "rank": [2, 2], "embedding": [vec, vec]},
    ]
    for name, tables in (("experts", parts), ("predictions", preds)):
        (tmp_path / name).mkdir()
        for i, t in enumerate(tables):
            pq.write_table(pa.table(t), tmp_path / name / f"part-{i:05d}.parquet")
    for budget in (100, 10**9):  # one unit per bucket, and everything in memory
        streamed = _stream_dir(
            tmp_path,
            SETTINGS,
            budget_bytes=budget,
            temp_dir=tmp_path,
        )
        f = streamed.finished
        assert f.video_ids.tolist() == ["x", "y"]
        assert f.result.n_expert_frames.tolist() == [2, 3]
        assert f.result.metrics["n_videos_eligible"] == 2
        # x: rank 2 at 13.0 is 3.0 s from the expert frame at 10.0 (exactly the tolerance).
        assert f.result.matches.first_hit_rank.tolist() == [2, 2]
        assert f.result.metrics["recall_at_1"] == 0.0
        assert f.result.metrics["recall_at_2"] == 1.0


def test_streaming_time_only_matching_ignores_embeddings(tmp_path: Path) -> None:
    from dataclasses import replace

    experts, preds = random_tables(11, 60, images=False)
    exp = arrow_table(experts).drop_columns(["embedding"])
    pred = arrow_table(preds).drop_columns(["embedding"])
    write_parts(exp, tmp_path / "experts", 3, 1)
    write_parts(pred, tmp_path / "predictions", 2, 2)
    s = replace(SETTINGS, min_cosine=None, sweep_min_cosines=())
    streamed = _stream_dir(
        tmp_path,
        s,
        budget_bytes=20_000,
        temp_dir=tmp_path,
    )
    pq.write_table(exp, tmp_path / "e.parquet")
    pq.write_table(pred, tmp_path / "p.parquet")
    inputs = load_poster_inputs(
        tmp_path / "e.parquet", tmp_path / "p.parquet", need_embeddings=False
    )
    whole = score_poster(inputs, s, judge_frames=False)
    assert streamed.stats.spilled and len(streamed.stats.unit_rows) > 1
    assert_same(whole.finished, streamed.finished, "finished")
    assert_same(whole.gallery, streamed.gallery, "gallery")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_units_cut_in_memory_equal_one_unit(tmp_path: Path, seed: int) -> None:
    """Inputs that fit the budget are still scored unit by unit (no disk), with equal results."""
    exp, pred = _many_videos(150, seed)
    write_parts(exp, tmp_path / "experts", 3, seed)
    write_parts(pred, tmp_path / "predictions", 2, seed + 1)
    streamed = _stream_dir(
        tmp_path,
        SETTINGS,
        budget_bytes=64 << 20,
        temp_dir=tmp_path,
        unit_target_bytes=60_000,
    )
    stats = streamed.stats
    assert not stats.spilled and stats.n_buckets > 1 and len(stats.unit_rows) > 1
    assert max(stats.unit_rows) <= stats.max_unit_rows
    assert sum(stats.unit_rows) == exp.num_rows + pred.num_rows
    assert not list(tmp_path.glob("video-eval-*"))  # nothing went to disk
    whole = _in_memory(exp, pred, tmp_path, None, judge=False)
    assert_same(whole.finished, streamed.finished, "finished")
    assert_same(whole.gallery, streamed.gallery, "gallery")


def test_a_bucket_over_the_budget_is_split_again_in_memory(tmp_path: Path) -> None:
    """Held in memory, a bucket larger than the budget allows is re-split by another hash."""
    exp, pred, big = _with_big_video(tmp_path, n_videos=40, repeat=100)
    sources = (
        resolve_source(tmp_path / "experts", "experts"),
        resolve_source(tmp_path / "predictions", "predictions"),
    )
    plans = [
        plan_table(s, role, need_embeddings=True, want_image=False)
        for s, role in zip(sources, ("experts", "predictions"), strict=True)
    ]
    row_bytes = max(p.row_bytes for p in plans)
    data = sum(p.n_rows * p.data_row_bytes for p in plans)
    # The tables fit in memory with units of a quarter of the rows; a unit may hold about
    # 0.4 of them, and the bucket of the big video (half of them) is split again.
    unit = (exp.num_rows + pred.num_rows) // 4 * row_bytes
    budget = int(1.3 * data) + unit
    streamed = stream_poster(
        *sources, SETTINGS, budget_bytes=budget, temp_dir=tmp_path, unit_target_bytes=unit
    )
    stats = streamed.stats
    assert not stats.spilled and stats.n_buckets > 1
    over = [r for r in stats.unit_rows if r > stats.max_unit_rows]
    assert len(over) == 1 and over[0] >= big
    assert not list(tmp_path.glob("video-eval-*"))
    whole = _in_memory(exp, pred, tmp_path, None, judge=False)
    assert_same(whole.finished, streamed.finished, "finished")
    assert_same(whole.gallery, streamed.gallery, "gallery")


@pytest.mark.parametrize("cap", [0, 1, 4, 25, None])
def test_pruned_galleries_merge_into_the_same_gallery(cap: int | None) -> None:
    """Pruning after each unit keeps at most ``cap`` videos' frames and changes no merge."""
    units = scored_units(11, 60, 7)
    pruned: list = []
    for unit in units:
        pruned = prune_galleries([*pruned, unit], cap)
        kept = sum(q.gallery.frames.videos.shape[0] for q in pruned if q.gallery is not None)
        assert cap is None or kept <= cap
    assert_same(
        merge_scored(units, max_gallery_videos=cap),
        merge_scored(pruned, max_gallery_videos=cap),
        "merged",
    )
