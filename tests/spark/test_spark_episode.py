"""engine=spark on the episode task: the same numbers and tables as engine=local."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from evaluator.demo.episode_data import make_episode_demo
from evaluator.errors import InputError
from evaluator.tasks.episode import run_episode
from tests.conftest import compose_config
from tests.test_episode_end_to_end import HAND_CSV

pytestmark = pytest.mark.spark


def _run(path: str, out: Path, engine: str, *extra: str):
    cfg = compose_config(
        [
            "task=episode",
            f"data.episodes={path}",
            f"engine={engine}",
            "episode.bootstrap.n_resamples=200",
            "plots=false",
            *extra,
        ]
    )
    return run_episode(cfg, out / engine, track=False)


def _same(a, b) -> None:
    assert a.summary["metrics"] == b.summary["metrics"]
    assert a.summary["coverage_at_accuracy"] == b.summary["coverage_at_accuracy"]
    assert a.summary["confusion_matrix"] == b.summary["confusion_matrix"]
    pd.testing.assert_frame_equal(a.video_table, b.video_table)
    pd.testing.assert_frame_equal(a.sweep, b.sweep)
    if a.groups is None:
        assert b.groups is None
    else:
        pd.testing.assert_frame_equal(a.groups, b.groups)


def test_spark_equals_local_on_csv_jsonl_and_part_folders(spark, tmp_path: Path) -> None:
    hand = tmp_path / "hand.csv"
    hand.write_text(HAND_CSV)
    _same(_run(str(hand), tmp_path / "h", "local"), _run(str(hand), tmp_path / "h", "spark"))

    demo = make_episode_demo(300, seed=5).models["episode_candidate"]
    single = tmp_path / "episodes.jsonl"
    demo.to_json(single, orient="records", lines=True)
    local = _run(str(single), tmp_path / "d", "local")
    _same(local, _run(str(single), tmp_path / "d", "spark"))

    # Part files of a folder, read in name order: the same videos, the same numbers.
    parts = tmp_path / "parts"
    parts.mkdir()
    for i, start in enumerate(range(0, len(demo), 70)):
        demo.iloc[start : start + 70].to_parquet(parts / f"part-{i:05d}.parquet", index=False)
    _same(local, _run(str(parts), tmp_path / "p", "spark"))


def test_spark_episode_errors_name_the_column(spark, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(HAND_CSV.replace("v4,B,1,6,7,0.99,6", "v4,B,1,6,7,1.5,6"))
    with pytest.raises(InputError, match=r"column 'confidence'.*row 4"):
        _run(str(bad), tmp_path, "spark")
    with pytest.raises(InputError, match="file not found"):
        _run(str(tmp_path / "nope.parquet"), tmp_path, "spark")
