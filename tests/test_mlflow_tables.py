"""Tables logged in slabs are MLflow tables: the same file as ``mlflow.log_table`` writes, read
back by ``mlflow.load_table``, listed once in the run's tag, and replaced (not doubled) when
logged again. Real sqlite store in a temp dir."""

from __future__ import annotations

import io
import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from evaluator.tracking.tables import LOGGED_ARTIFACTS_TAG, log_tables, write_table_json


def _frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(n)
    ids = np.array(["a", 'quote"d', "ünï\\code", "x y"], dtype=object)[rng.integers(0, 4, n)]
    score = rng.normal(size=n)
    score[rng.random(n) < 0.3] = np.nan
    return pd.DataFrame(
        {
            "video_id": ids,
            "first_hit_rank": rng.integers(0, 11, n),
            "best_cosine": score,
            "eligible": rng.random(n) < 0.8,
            "miss_reason": pd.Series(np.where(rng.random(n) < 0.5, None, "time"), dtype=object),
            "when": pd.Timestamp("2026-01-02T03:04:05") + pd.to_timedelta(np.arange(n), "s"),
        }
    )


@pytest.mark.parametrize(("n", "slab"), [(0, 3), (1, 3), (7, 3), (9, 3), (9, 9), (100, 1000)])
def test_the_file_is_byte_for_byte_what_pandas_writes_for_mlflow(n: int, slab: int) -> None:
    frame = _frame(n)
    out = io.StringIO()
    write_table_json(frame, out, slab_rows=slab)
    assert out.getvalue() == frame.to_json(orient="split", index=False, date_format="iso")


def test_logged_tables_load_back_and_are_replaced_not_doubled(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("t", artifact_location=(tmp_path / "art").as_uri())
    run_id = client.create_run(exp).info.run_id
    frame = _frame(120).drop(columns="when").fillna({"miss_reason": "-"})
    log_tables(client, run_id, {"match_table.json": frame, "extra/slices.json": frame.head(5)})
    log_tables(client, run_id, {"match_table.json": frame})  # again: replaced
    tag = json.loads(client.get_run(run_id).data.tags[LOGGED_ARTIFACTS_TAG])
    assert tag == [
        {"path": "match_table.json", "type": "table"},
        {"path": "extra/slices.json", "type": "table"},
    ]
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)  # load_table searches runs through the fluent API
    try:
        loaded = client.load_table(exp, "match_table.json", run_ids=[run_id])
        nested = client.load_table(exp, "extra/slices.json", run_ids=[run_id])
    finally:
        mlflow.set_tracking_uri(previous)
    assert len(loaded) == len(frame)  # not doubled by the second log
    # pandas writes 10 significant digits, as for mlflow.log_table
    pd.testing.assert_frame_equal(loaded, frame, check_dtype=False, rtol=1e-9)
    assert len(nested) == 5
