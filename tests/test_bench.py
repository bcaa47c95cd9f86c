"""scripts/bench.py on a tiny data set: its data, the floor and the pandas script run."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from evaluator.tasks.poster import run_poster
from tests.conftest import compose_config, load_script

bench = load_script("bench")


def test_data_and_floor_on_a_tiny_set(tmp_path: Path) -> None:
    experts, preds = bench.ensure_data(tmp_path, 120, 4)
    assert pq.read_table(experts).num_rows == 120 * bench.EXPERT_FRAMES
    assert pq.read_table(preds).num_rows == 120 * bench.PREDICTIONS
    bench.floor(experts, preds, tmp_path)  # a failing read exits (SystemExit) with its error


def test_the_floor_refuses_a_folder_without_part_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no part files"):
        bench.floor(tmp_path / "empty", tmp_path / "empty", tmp_path)


def test_the_pandas_script_computes_what_video_eval_computes(tmp_path: Path) -> None:
    # The comparison is only fair if the script computes the metric: its recall@1..10 on the
    # bench's data equal the evaluator's.
    experts, preds = bench.ensure_data(tmp_path, 300, 8)
    out = subprocess.run(
        [sys.executable, "-c", bench.PANDAS_SCRIPT, str(experts), str(preds)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    script = ast.literal_eval(out.strip())
    cfg = compose_config(
        [f"data.experts={experts}", f"data.predictions={preds}", "plots=false", "report.html=false"]
    )
    outcome = run_poster(cfg, tmp_path / "out", track=False)
    assert script == pytest.approx([float(r) for r in outcome.result.recall_curve], abs=0)
    assert 0 < script[0] < script[-1] < 1
