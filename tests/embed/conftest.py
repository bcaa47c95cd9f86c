"""Fixtures for the embed tests: tiny synthetic images and videos, a small fast embedder."""

from __future__ import annotations

from pathlib import Path

import pytest
from embed_testkit import (
    INDEX_FPS,
    INDEX_FRAMES,
    build_quietly,
    index_frame,
    render_frame,
    small_spec,
    write_video,
)


def _index_video(folder: Path, codec: str, bframes: int) -> Path:
    path = folder / f"index_{codec}_bf{bframes}.mp4"
    frames = [index_frame(i) for i in range(INDEX_FRAMES)]
    write_video(path, frames, fps=INDEX_FPS, gop=5, bframes=bframes, codec=codec)
    return path


@pytest.fixture(scope="session")
def index_video(tmp_path_factory) -> Path:
    """A 2.5 s, 10 fps, 40x16 mp4 whose frame i is `index_frame(i)`."""
    return _index_video(tmp_path_factory.mktemp("video"), "libx264", bframes=0)


@pytest.fixture(
    scope="session",
    params=[("libx264", 0), ("mpeg4", 2)],
    ids=["h264", "mpeg4_bframes"],
)
def index_videos(request, tmp_path_factory) -> Path:
    """`index_video` as H.264, and as MPEG-4 with B-frames (decode order != display order)."""
    codec, bframes = request.param
    return _index_video(tmp_path_factory.mktemp("video"), codec, bframes=bframes)


@pytest.fixture(scope="session")
def scene_images(tmp_path_factory) -> list[Path]:
    """Six 48 px PNGs: scenes 0-2 at t = 0 and t = 1."""
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for scene in range(3):
        for t in (0, 1):
            path = folder / f"scene{scene}_t{t}.png"
            render_frame(scene, float(t), size=48).save(path)
            paths.append(path)
    return paths


@pytest.fixture(scope="session")
def small_embedder():
    return build_quietly(small_spec())
