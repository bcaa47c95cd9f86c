"""Evaluating from image files and from video files: paths, errors, the embedding cache."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from evaluator.demo.images import render_frame, write_demo_video
from evaluator.errors import InputError
from evaluator.tasks.poster import run_poster
from tests.conftest import compose_config

SMALL = [
    "embedder=torchvision",
    "embedder.model=resnet18",
    "embedder.weights=null",
    "embedder.image_size=32",
    "embedder.batch_size=16",
    "embedder.progress=false",
    "metrics.min_expert_frames=3",
    "matching.min_cosine=0.9",
    "metrics.bootstrap.n_resamples=50",
    "plots=false",
]


@pytest.fixture
def image_tables(tmp_path: Path) -> dict[str, Path]:
    """Two videos; experts pick frames of scene 0/1; the model hits video a at rank 1 only."""
    root = tmp_path / "frames"
    for scene in range(4):
        for t in range(4):
            (root / f"s{scene}").mkdir(parents=True, exist_ok=True)
            render_frame(scene, float(t), size=40).save(root / f"s{scene}" / f"{t}.png")
    experts = pd.DataFrame(
        {
            "video_id": ["a"] * 3 + ["b"] * 3,
            "timestamp": [10.0, 11.0, 12.0, 50.0, 51.0, 52.0],
            "image": ["s0/0.png", "s0/1.png", "s0/2.png", "s1/0.png", "s1/1.png", "s1/2.png"],
        }
    )
    preds = pd.DataFrame(
        {
            "video_id": ["a", "a", "b", "b"],
            "timestamp": [11.5, 90.0, 51.0, 200.0],
            "rank": [1, 2, 1, 2],
            "image": ["s0/3.png", "s2/0.png", "s3/0.png", "s2/1.png"],
        }
    )
    paths = {
        "root": root,
        "experts": tmp_path / "experts.parquet",
        "predictions": tmp_path / "preds.parquet",
    }
    experts.to_parquet(paths["experts"], index=False)
    preds.to_parquet(paths["predictions"], index=False)
    return paths


def _cfg(t: dict[str, Path], tmp_path: Path, *extra: str):
    return compose_config(
        [
            f"data.experts={t['experts']}",
            f"data.predictions={t['predictions']}",
            f"data.image_root={t['root']}",
            f"mlflow.tracking_uri=sqlite:///{tmp_path / 'db'}",
            f"embedder.cache_dir={tmp_path / 'cache'}",
            *SMALL,
            *extra,
        ]
    )


def test_images_are_embedded_once_and_then_come_from_the_cache(image_tables, tmp_path) -> None:
    with pytest.warns(UserWarning, match="random weights"):
        first = run_poster(_cfg(image_tables, tmp_path), tmp_path / "o1")
    m = first.summary["metrics"]
    # The model frames at 90 s and 200 s lie more than 10 s (the sweep's largest tolerance)
    # from every expert frame: they can change no number and get no vector.
    assert (m["n_embeddings_computed"], m["n_embeddings_cached"]) == (8, 0)
    assert m["n_frames_not_embedded"] == 2 and m["n_frames_decoded"] == 0
    assert m["embedding_seconds"] > 0 and m["embedding_frames_per_s"] > 0
    with pytest.warns(UserWarning, match="random weights"):
        second = run_poster(_cfg(image_tables, tmp_path), tmp_path / "o2")
    m2 = second.summary["metrics"]
    assert (m2["n_embeddings_computed"], m2["n_embeddings_cached"]) == (0, 8)
    assert second.result.metrics == first.result.metrics
    run = MlflowClient(f"sqlite:///{tmp_path / 'db'}").get_run(second.run.run_id)
    assert run.data.metrics["n_embeddings_cached"] == 8
    assert run.data.metrics["n_frames_not_embedded"] == 2
    assert "embedding_seconds" in run.data.metrics
    assert run.data.params["embedder.model"] == "resnet18"
    assert run.data.params["embedder.dim"] == "512"
    assert "embedder.identity_sha256" in run.data.params


def test_a_path_leaving_the_image_root_is_refused(image_tables, tmp_path) -> None:
    preds = pd.read_parquet(image_tables["predictions"])
    preds.loc[2, "image"] = "../../etc/passwd"
    preds.to_parquet(image_tables["predictions"], index=False)
    with pytest.raises(
        InputError,
        match=r"preds.parquet: column 'image': path leaves the image "
        r"root .* row 3",
    ):
        run_poster(_cfg(image_tables, tmp_path), tmp_path / "o")


def test_an_unreadable_image_names_the_file_and_the_row(image_tables, tmp_path) -> None:
    (image_tables["root"] / "s3" / "0.png").write_bytes(b"not a png")
    with (
        pytest.warns(UserWarning),
        pytest.raises(
            InputError,
            match=r"preds.parquet: column 'image': unreadable image file .*s3/0.png.*row 3",
        ),
    ):
        run_poster(_cfg(image_tables, tmp_path), tmp_path / "o")


def test_frames_decoded_from_video_files(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    scenes = write_demo_video(video)  # 3 s, one scene per second
    assert len(set(scenes)) == 3
    experts = pd.DataFrame(
        {"video_id": ["v"] * 3, "timestamp": [0.2, 0.5, 0.8], "video_path": ["clip.mp4"] * 3}
    )
    preds = pd.DataFrame(
        {
            "video_id": ["v", "v"],
            "timestamp": [2.5, 0.4],
            "rank": [1, 2],
            "video_path": ["clip.mp4"] * 2,
        }
    )
    experts.to_parquet(tmp_path / "e.parquet", index=False)
    preds.to_parquet(tmp_path / "p.parquet", index=False)
    cfg = compose_config(
        [
            f"data.experts={tmp_path / 'e.parquet'}",
            f"data.predictions={tmp_path / 'p.parquet'}",
            f"mlflow.tracking_uri=sqlite:///{tmp_path / 'db'}",
            f"embedder.cache_dir={tmp_path / 'c'}",
            *SMALL,
            "matching.time_tolerance_s=1.0",
        ]
    )
    with pytest.warns(UserWarning, match="random weights"):
        out = run_poster(cfg, tmp_path / "o", track=False)
    # Rank 1 is 2 s away from every expert frame; rank 2 is in the experts' scene.
    assert out.result.matches.first_hit_rank.tolist() == [2]
    assert out.summary["metrics"]["n_embeddings_computed"] == 5


def test_missing_weights_say_how_to_supply_a_local_file(image_tables, tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    cfg = _cfg(image_tables, tmp_path, "embedder.weights=IMAGENET1K_V1")
    with pytest.raises(InputError, match=r"embedder.*weights_path"):
        run_poster(cfg, tmp_path / "o")


def test_local_weights_file(image_tables, tmp_path: Path) -> None:
    import torchvision

    weights = tmp_path / "resnet18.pt"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    out = run_poster(
        _cfg(image_tables, tmp_path, f"embedder.weights_path={weights}"),
        tmp_path / "o",
        track=False,
    )
    assert out.summary["metrics"]["n_embeddings_computed"] == 8  # 2 frames far from all


def test_image_tables_need_an_image_column_with_torchvision(image_tables, tmp_path) -> None:
    preds = pd.read_parquet(image_tables["predictions"]).drop(columns="image")
    preds.to_parquet(image_tables["predictions"], index=False)
    with (
        pytest.warns(UserWarning),
        pytest.raises(InputError, match=r"preds.parquet: missing column 'image' or 'video_path'"),
    ):
        run_poster(_cfg(image_tables, tmp_path), tmp_path / "o")


def _video_tables(tmp_path: Path, expert_times, folder: str = "clips") -> list[str]:
    (tmp_path / "real").mkdir(exist_ok=True)
    write_demo_video(tmp_path / "real" / "clip.mp4")  # 3 s at 10 fps
    link = tmp_path / folder
    if not link.exists():
        link.symlink_to(tmp_path / "real", target_is_directory=True)
    pd.DataFrame(
        {
            "video_id": ["v"] * len(expert_times),
            "timestamp": expert_times,
            "video_path": [f"{folder}/clip.mp4"] * len(expert_times),
        }
    ).to_parquet(tmp_path / "e.parquet", index=False)
    pd.DataFrame(
        {"video_id": ["v"], "timestamp": [0.4], "rank": [1], "video_path": [f"{folder}/clip.mp4"]}
    ).to_parquet(tmp_path / "p.parquet", index=False)
    return [
        f"data.experts={tmp_path / 'e.parquet'}",
        f"data.predictions={tmp_path / 'p.parquet'}",
        f"embedder.cache_dir={tmp_path / 'c'}",
        *SMALL,
    ]


def test_a_symlinked_video_folder_inside_the_root_is_accepted(tmp_path: Path) -> None:
    cfg = compose_config(_video_tables(tmp_path, [0.2, 0.5, 0.8]))
    with pytest.warns(UserWarning, match="random weights"):
        out = run_poster(cfg, tmp_path / "o", track=False)
    assert out.result.matches.first_hit_rank.tolist() == [1]
    assert out.summary["metrics"]["n_frames_decoded"] >= 4


@pytest.mark.parametrize(
    ("times", "rows"),
    [([0.2, 0.5, 3000.0], r"row 3 \(timestamp=3000.0"), ([200.0, 500.0, 800.0], r"row 1 .*row 3")],
)
def test_a_timestamp_past_the_end_is_refused(tmp_path: Path, times, rows) -> None:
    cfg = compose_config(_video_tables(tmp_path, times))
    with (
        pytest.warns(UserWarning, match="random weights"),
        pytest.raises(
            InputError,
            match=rf"e.parquet: column 'timestamp': timestamp past the end of its video .*clip.mp4"
            rf".*ends at 3.000 s.*milliseconds.* in \d rows?: {rows}",
        ),
    ):
        run_poster(cfg, tmp_path / "o", track=False)


def test_a_timestamp_within_the_last_frame_is_accepted(tmp_path: Path) -> None:
    # The last frame starts at 2.9 s and lasts 0.1 s.
    cfg = compose_config(_video_tables(tmp_path, [0.2, 0.5, 3.0]))
    with pytest.warns(UserWarning, match="random weights"):
        run_poster(cfg, tmp_path / "o", track=False)


def test_a_path_with_dotdot_leaving_the_root_is_refused_even_through_a_link(tmp_path: Path):
    args = _video_tables(tmp_path, [0.2, 0.5, 0.8])
    # clips/../../x.mp4 leaves the root lexically, wherever the link points.
    pd.DataFrame(
        {"video_id": ["v"], "timestamp": [0.4], "rank": [1], "video_path": ["clips/../../x.mp4"]}
    ).to_parquet(tmp_path / "p.parquet", index=False)
    with (
        pytest.warns(UserWarning, match="random weights"),
        pytest.raises(
            InputError, match=r"p.parquet: column 'video_path': path leaves the image root"
        ),
    ):
        run_poster(compose_config(args), tmp_path / "o", track=False)


def test_frames_without_an_embedder_name_the_offline_one(image_tables, tmp_path) -> None:
    cfg = compose_config(
        [
            f"data.experts={image_tables['experts']}",
            f"data.predictions={image_tables['predictions']}",
            "embedder=precomputed",
        ]
    )
    with pytest.raises(InputError, match=r"embedder=mobilenet_v2_deepsort.*offline"):
        run_poster(cfg, tmp_path / "o", track=False)


def test_the_report_shows_thumbnails_of_video_frames(tmp_path: Path) -> None:
    cfg = compose_config([*_video_tables(tmp_path, [0.2, 0.5, 0.8]), "report.html=true"])
    with pytest.warns(UserWarning, match="random weights"):
        out = run_poster(cfg, tmp_path / "o", track=False)
    html = (out.output_dir / "report.html").read_text()
    # Three expert frames and one model frame, each decoded from the (symlinked) video.
    assert html.count("data:image/jpeg;base64,") == 4


def test_centring_from_images_equals_centring_on_every_frames_vectors(tmp_path: Path) -> None:
    """matching.center=experts from image files (only the frames that can matter embedded,
    plus every eligible expert frame for the mean) gives the numbers of the same vectors
    computed for every frame and given as precomputed embeddings."""
    root = tmp_path / "frames"
    for scene in range(4):
        (root / f"s{scene}").mkdir(parents=True)
        for t in range(4):
            render_frame(scene, float(t), size=40).save(root / f"s{scene}" / f"{t}.png")
    # The expert frame at 40 s of video a is more than 10 s from every model frame: no pair
    # needs it, yet the mean expert vector does.
    experts = pd.DataFrame(
        {
            "video_id": ["a"] * 4 + ["b"] * 3,
            "timestamp": [10.0, 11.0, 12.0, 40.0, 50.0, 51.0, 52.0],
            "image": [
                "s0/0.png",
                "s0/1.png",
                "s0/2.png",
                "s2/3.png",
                "s1/0.png",
                "s1/1.png",
                "s1/2.png",
            ],
        }
    )
    preds = pd.DataFrame(
        {
            "video_id": ["a", "a", "b", "b"],
            "timestamp": [11.5, 90.0, 51.0, 200.0],
            "rank": [1, 2, 1, 2],
            "image": ["s0/3.png", "s2/0.png", "s3/0.png", "s2/1.png"],
        }
    )
    t = {"root": root, "experts": tmp_path / "e.parquet", "predictions": tmp_path / "p.parquet"}
    experts.to_parquet(t["experts"], index=False)
    preds.to_parquet(t["predictions"], index=False)
    centred = ("matching.center=experts", "matching.min_cosine=0.2")
    with pytest.warns(UserWarning, match="random weights"):
        from_images = run_poster(_cfg(t, tmp_path, *centred), tmp_path / "o1", track=False)
    assert from_images.summary["metrics"]["n_frames_not_embedded"] == 2

    from evaluator.tasks.poster import build_table_embedder

    with pytest.warns(UserWarning, match="random weights"):
        embedder = build_table_embedder(_cfg(t, tmp_path, *centred)).embedder
    from PIL import Image

    for frame in (experts, preds):
        images = [Image.open(root / p).convert("RGB") for p in frame["image"]]
        frame["embedding"] = list(embedder.embed_images(images).astype("float64"))
    vec = {
        "root": root,
        "experts": tmp_path / "ev.parquet",
        "predictions": tmp_path / "pv.parquet",
    }
    experts.drop(columns="image").to_parquet(vec["experts"], index=False)
    preds.drop(columns="image").to_parquet(vec["predictions"], index=False)
    from_vectors = run_poster(
        _cfg(vec, tmp_path, *centred, "embedder=precomputed"), tmp_path / "o2", track=False
    )
    a, b = from_images.result.metrics, from_vectors.result.metrics
    assert a.keys() == b.keys()
    for name, value in a.items():
        assert value == pytest.approx(b[name], abs=1e-6, nan_ok=True), name
    cosines = [
        o.match_table.set_index("video_id")["max_cosine"] for o in (from_images, from_vectors)
    ]
    pd.testing.assert_series_equal(cosines[0], cosines[1], atol=1e-6, rtol=0)
