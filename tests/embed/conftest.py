"""Fixtures for the embed tests: tiny synthetic images and videos, a small fast embedder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from embed_testkit import (
    INDEX_FPS,
    INDEX_FRAMES,
    build_quietly,
    index_level,
    render_frame,
    small_spec,
    write_video,
)


@pytest.fixture(scope="session")
def index_video(tmp_path_factory) -> Path:
    """A 2.5 s, 10 fps, 32x32 mp4 whose frame i is a flat grey of `index_level(i)`."""
    path = tmp_path_factory.mktemp("video") / "index.mp4"
    frames = [np.full((32, 32, 3), index_level(i), dtype=np.uint8) for i in range(INDEX_FRAMES)]
    write_video(path, frames, fps=INDEX_FPS, gop=5)
    return path


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
