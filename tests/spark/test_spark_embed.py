"""engine=spark with an image embedder: vectors computed on the executors, the local cache keys."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest

from evaluator.demo.images import write_demo_video
from evaluator.errors import InputError
from evaluator.tasks.poster import run_poster
from tests.conftest import compose_config
from tests.test_images_end_to_end import SMALL, image_tables  # noqa: F401 (fixture)

pytestmark = pytest.mark.spark


def _run(t: dict[str, Path], tmp_path: Path, out: str, engine: str, *extra: str):
    cfg = compose_config(
        [
            f"data.experts={t['experts']}",
            f"data.predictions={t['predictions']}",
            f"data.image_root={t['root']}",
            f"embedder.cache_dir={tmp_path / 'cache'}",
            f"engine={engine}",
            "report.thumbnail_px=24",
            *SMALL,
            *extra,
        ]
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*random weights")
        return run_poster(cfg, tmp_path / out, track=False)


def test_spark_embeds_like_local_and_shares_the_cache(spark, image_tables, tmp_path) -> None:  # noqa: F811
    on_spark = _run(image_tables, tmp_path, "s", "spark")
    m = on_spark.summary["metrics"]
    # 10 distinct image files, 2 of them far from every expert frame (no vector): the other 8
    # are computed on the executors.
    assert (m["n_embeddings_computed"], m["n_embeddings_cached"]) == (8, 0)
    assert m["n_frames_not_embedded"] == 2 and "n_frames_decoded" not in m
    # The local engine finds every vector in the cache the executors wrote: the same keys.
    local = _run(image_tables, tmp_path, "l", "local")
    assert local.summary["metrics"]["n_embeddings_computed"] == 0
    assert local.summary["metrics"]["n_embeddings_cached"] == 8
    assert local.summary["metrics"]["n_frames_not_embedded"] == 2
    for name in (
        "n_embeddings_computed",
        "n_embeddings_cached",
        "n_frames_decoded",
        "embedding_seconds",
        "embedding_frames_per_s",
    ):
        m.pop(name, None)
        local.summary["metrics"].pop(name)
    assert m == local.summary["metrics"]
    assert on_spark.summary["dataset_digest"] == local.summary["dataset_digest"]
    pd.testing.assert_frame_equal(on_spark.match_table, local.match_table)
    # The report shows the frames' thumbnails (data URIs) as the local one does.
    html = (tmp_path / "s" / "report.html").read_text()
    assert (
        html.count("data:image/")
        == (tmp_path / "l" / "report.html").read_text().count("data:image/")
        > 0
    )


def test_spark_errors_on_frames(spark, image_tables, tmp_path) -> None:  # noqa: F811
    (image_tables["root"] / "s3" / "0.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"preds.parquet: column 'image': unreadable image file"):
        _run(image_tables, tmp_path, "o", "spark")
    preds = pd.read_parquet(image_tables["predictions"])
    preds.loc[2, "image"] = "../../etc/passwd"
    preds.to_parquet(image_tables["predictions"], index=False)
    with pytest.raises(InputError, match=r"column 'image': path leaves the image root"):
        _run(image_tables, tmp_path, "o", "spark")
    assert not (tmp_path / "o").exists()


def test_spark_decodes_frames_from_video_files(spark, tmp_path: Path) -> None:
    write_demo_video(tmp_path / "clip.mp4")
    pd.DataFrame(
        {"video_id": ["v"] * 3, "timestamp": [0.2, 0.5, 0.8], "video_path": ["clip.mp4"] * 3}
    ).to_parquet(tmp_path / "e.parquet", index=False)
    pd.DataFrame(
        {
            "video_id": ["v", "v"],
            "timestamp": [2.5, 0.4],
            "rank": [1, 2],
            "video_path": ["clip.mp4"] * 2,
        }
    ).to_parquet(tmp_path / "p.parquet", index=False)
    t = {"experts": tmp_path / "e.parquet", "predictions": tmp_path / "p.parquet", "root": tmp_path}
    out = _run(t, tmp_path, "v", "spark", "matching.time_tolerance_s=1.0")
    assert out.result.matches.first_hit_rank.tolist() == [2]
    assert out.summary["metrics"]["n_embeddings_computed"] == 5
    # The report shows the frames decoded from the video: 3 expert frames, 2 model frames.
    assert (tmp_path / "v" / "report.html").read_text().count("data:image/jpeg;base64,") == 5

    # Past the end of the 3 s video: refused on the executors too.
    pd.DataFrame(
        {"video_id": ["v"] * 3, "timestamp": [0.2, 0.5, 3000.0], "video_path": ["clip.mp4"] * 3}
    ).to_parquet(tmp_path / "e.parquet", index=False)
    with pytest.raises(InputError, match=r"column 'timestamp': timestamp past the end.*millisec"):
        _run(t, tmp_path, "v2", "spark", "matching.time_tolerance_s=1.0")
