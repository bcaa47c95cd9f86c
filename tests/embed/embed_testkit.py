"""Helpers shared by the embed tests: synthetic media and small, fast embedders.

Kept out of conftest.py so that tests can import them by a name no other test folder uses.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

from demo_images import render_frame, write_video  # noqa: E402

from evaluator.embed import EmbedderSpec, build_embedder  # noqa: E402

__all__ = ["render_frame", "write_video"]

INDEX_FPS = 10
INDEX_FRAMES = 25


def index_level(i: int) -> int:
    """Grey level that encodes frame index i; steps of 8 survive H.264 at low crf."""
    return 10 + 8 * i


def small_spec(**overrides) -> EmbedderSpec:
    """resnet18 with random weights at 32 px: fast enough for unit tests on two CPU cores."""
    fields = dict(
        model="resnet18", weights=None, image_size=32, batch_size=4, cache_dir="off", progress=False
    )
    fields.update(overrides)
    return EmbedderSpec(**fields)


def build_quietly(spec: EmbedderSpec):
    """Build an embedder whose random-weights warning is expected and not under test here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return build_embedder(spec)
