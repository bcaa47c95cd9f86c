"""engine=spark on the poster task: every number, table and file equal to engine=local."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evaluator.demo.poster_data import make_demo_set
from evaluator.errors import InputError
from evaluator.tasks.poster import run_poster
from tests.conftest import compose_config
from tests.core.test_poster import random_set

pytestmark = pytest.mark.spark


def run(experts: Path | str, predictions: Path | str, out: Path, engine: str, *extra: str):
    cfg = compose_config(
        [
            f"data.experts={experts}",
            f"data.predictions={predictions}",
            f"engine={engine}",
            "metrics.bootstrap.n_resamples=200",
            *extra,
        ]
    )
    return run_poster(cfg, out / engine, track=False)


def assert_same(local, spark) -> None:
    """Every metric, the CIs, the sweep, the match table and the digest, exactly."""
    a, b = local.summary, spark.summary
    assert a["metrics"] == b["metrics"]
    assert a["recall_at_k"] == b["recall_at_k"]
    assert a["dataset_digest"] == b["dataset_digest"]
    assert a["rank_source"] == b["rank_source"]
    pd.testing.assert_frame_equal(local.match_table, spark.match_table)
    for name in ("sweep.parquet", "match_table.parquet"):
        pa, pb = local.output_dir / name, spark.output_dir / name
        if pa.exists():
            pd.testing.assert_frame_equal(pd.read_parquet(pa), pd.read_parquet(pb))
    names = {p.relative_to(local.output_dir) for p in local.files}
    assert names == {p.relative_to(spark.output_dir) for p in spark.files}


def random_tables(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The core tests' random set (integer vectors, half-second times: exact boundaries)."""
    experts, predictions = random_set(np.random.default_rng(seed), n_videos=40, dim=4)
    e = pd.DataFrame(experts, columns=["video_id", "timestamp", "embedding", "annotator"])
    p = pd.DataFrame(predictions, columns=["video_id", "timestamp", "embedding", "rank"])
    for t in (e, p):
        t["embedding"] = [list(map(float, v)) for v in t["embedding"]]
    return e, p


def test_demo_set_with_report_equals_local(spark, tmp_path: Path) -> None:
    demo = make_demo_set(120, dim=16, seed=3)
    e, p = tmp_path / "experts.parquet", tmp_path / "candidate.parquet"
    demo.experts.to_parquet(e, index=False)
    demo.models["candidate"].to_parquet(p, index=False)  # ranked by score
    local = run(e, p, tmp_path, "local")
    spark_out = run(e, p, tmp_path, "spark")
    assert_same(local, spark_out)
    assert (spark_out.output_dir / "report.html").stat().st_size > 10_000


@pytest.mark.parametrize("seed", [0, 1])
def test_random_and_boundary_sets_equal_local(spark, tmp_path: Path, seed: int) -> None:
    e, p = random_tables(seed)
    # Boundary rows: exactly on the tolerance (3.0 s) and on the cosine (0.5).
    e = pd.concat(
        [
            e,
            pd.DataFrame(
                {
                    "video_id": ["edge"] * 5,
                    "timestamp": [0.0, 10, 20, 30, 40],
                    "embedding": [[1.0, 1, 1, 1]] * 5,
                    "annotator": [0] * 5,
                }
            ),
        ]
    )
    p = pd.concat(
        [
            p,
            pd.DataFrame(
                {
                    "video_id": ["edge"] * 2,
                    "timestamp": [3.0, 13.0],
                    "embedding": [[1.0, 0, 0, 0], [0.0, 1, 0, 0]],
                    "rank": [2, 1],
                }
            ),
        ]
    )
    ep, pp = tmp_path / "e.parquet", tmp_path / "p.parquet"
    e.to_parquet(ep, index=False)
    p.to_parquet(pp, index=False)
    extra = ("metrics.min_expert_frames=2", "plots=false")
    local = run(ep, pp, tmp_path, "local", *extra)
    assert local.summary["metrics"]["n_expert_duplicates_dropped"] > 0
    assert_same(local, run(ep, pp, tmp_path, "spark", *extra))
    # Time-only matching and the same tables as CSV (text vectors, "007"-style ids kept).
    e.to_csv(tmp_path / "e.csv", index=False)
    p.to_csv(tmp_path / "p.csv", index=False)
    extra = ("matching.min_cosine=null", "metrics.min_expert_frames=1", "report.html=false")
    assert_same(
        run(tmp_path / "e.csv", tmp_path / "p.csv", tmp_path / "c", "local", *extra),
        run(tmp_path / "e.csv", tmp_path / "p.csv", tmp_path / "c", "spark", *extra),
    )


def test_bad_input_names_the_column_and_leaves_nothing(spark, tmp_path: Path) -> None:
    e, p = random_tables(2)
    ep, pp = tmp_path / "e.parquet", tmp_path / "p.parquet"
    e.to_parquet(ep, index=False)
    bad = p.copy()
    bad.loc[3, "timestamp"] = -1.0
    bad.to_parquet(pp, index=False)
    with pytest.raises(InputError, match=r"p.parquet: column 'timestamp'.*1 row: \(timestamp=-1.0"):
        run(ep, pp, tmp_path, "spark")
    assert not (tmp_path / "spark").exists()
    bad = p.copy()
    bad.loc[1, "rank"] = bad.loc[0, "rank"]
    bad.loc[1, "video_id"] = bad.loc[0, "video_id"]
    bad.to_parquet(pp, index=False)
    with pytest.raises(InputError, match=r"column 'rank': duplicate rank within a video"):
        run(ep, pp, tmp_path, "spark")
    p.drop(columns="embedding").to_parquet(pp, index=False)
    with pytest.raises(InputError, match=r"missing column 'embedding'"):
        run(ep, pp, tmp_path, "spark")


def _catalog_parts(root: Path, n_videos: int, dim: int = 8, n_parts: int = 4) -> tuple[Path, Path]:
    """Part directories as a Spark job writes them (``part-*.parquet`` and ``_SUCCESS``): every
    video has 6 expert frames and 10 ranked predictions, half of them near an expert frame
    with a close embedding; rows shuffled over the parts (a video's rows in several parts)."""
    rng = np.random.default_rng(30)
    ids = np.array([f"v{v:06d}" for v in range(n_videos)], dtype=object)
    e_t = rng.integers(0, 1200, (n_videos, 6)) / 2
    e_emb = rng.integers(-2, 3, (n_videos, 6, dim)).astype(np.float64)
    pick = rng.integers(0, 6, (n_videos, 10))
    near = rng.random((n_videos, 10)) < 0.5
    p_t = np.where(
        near,
        np.take_along_axis(e_t, pick, 1) + rng.integers(-8, 9, (n_videos, 10)) / 2,
        rng.integers(0, 1200, (n_videos, 10)) / 2,
    ).clip(0)
    p_emb = np.where(
        near[..., None],
        np.take_along_axis(e_emb, pick[..., None], 1) + rng.integers(-1, 2, (n_videos, 10, dim)),
        rng.integers(-2, 3, (n_videos, 10, dim)),
    ).astype(np.float64)
    tables = {
        "experts": pd.DataFrame(
            {
                "video_id": np.repeat(ids, 6),
                "timestamp": e_t.ravel(),
                "embedding": list(e_emb.reshape(-1, dim)),
            }
        ),
        "predictions": pd.DataFrame(
            {
                "video_id": np.repeat(ids, 10),
                "timestamp": p_t.ravel(),
                "rank": np.tile(np.arange(1, 11), n_videos),
                "embedding": list(p_emb.reshape(-1, dim)),
            }
        ),
    }
    for name, table in tables.items():
        folder = root / name
        folder.mkdir()
        shuffled = table.sample(frac=1, random_state=len(name)).reset_index(drop=True)
        bounds = np.linspace(0, len(shuffled), n_parts + 1).astype(int)
        for i in range(n_parts):
            part = shuffled.iloc[bounds[i] : bounds[i + 1]]
            part.to_parquet(folder / f"part-{i:05d}-x.snappy.parquet", index=False)
        (folder / "_SUCCESS").touch()
    return root / "experts", root / "predictions"


@pytest.mark.slow
def test_30k_videos_from_part_directories_equal_local(spark, tmp_path: Path) -> None:
    experts, predictions = _catalog_parts(tmp_path, 30_000)
    extra = ("plots=false", "report.html=false")
    local = run(experts, predictions, tmp_path, "local", *extra)
    spark_out = run(experts, predictions, tmp_path, "spark", *extra)
    assert local.summary["metrics"]["n_videos_eligible"] == 30_000
    assert 0.2 < local.summary["metrics"]["recall_at_10"] < 1.0  # hits and misses both
    assert_same(local, spark_out)


def test_catalog_tables_and_uris_equal_local(spark, tmp_path: Path) -> None:
    """``table:NAME`` (a view of the session's catalog) and a ``file://`` URI of a part folder
    read the same rows as the files: the same numbers."""
    e, p = random_tables(3)
    ep, pp = tmp_path / "e.parquet", tmp_path / "p.parquet"
    e.to_parquet(ep, index=False)
    parts = tmp_path / "p_parts"
    parts.mkdir()
    for i, start in enumerate(range(0, len(p), len(p) // 3 + 1)):
        p.iloc[start : start + len(p) // 3 + 1].to_parquet(parts / f"part-{i}.parquet", index=False)
    p.to_parquet(pp, index=False)
    spark.read.parquet(str(ep)).createOrReplaceTempView("poster_experts")
    extra = ("metrics.min_expert_frames=2", "plots=false", "report.html=false")
    local = run(ep, pp, tmp_path, "local", *extra)
    on_spark = run("table:poster_experts", f"file://{parts}", tmp_path, "spark", *extra)
    a, b = local.summary, on_spark.summary
    assert a["metrics"] == b["metrics"] and a["recall_at_k"] == b["recall_at_k"]
    pd.testing.assert_frame_equal(local.match_table, on_spark.match_table)
