"""Helpers shared by the embed tests: synthetic media and small, fast embedders.

Kept out of conftest.py so that tests can import them by a name no other test folder uses.
"""

from __future__ import annotations

import warnings

import numpy as np

from evaluator.demo.images import render_frame, write_video
from evaluator.embed import EmbedderSpec, build_embedder

__all__ = ["render_frame", "write_video"]

INDEX_FPS = 10
INDEX_FRAMES = 25


INDEX_BITS = 5  # enough for INDEX_FRAMES
STRIPE = 8  # pixels per bit; frames are INDEX_BITS * STRIPE wide


def index_frame(i: int) -> np.ndarray:
    """A frame that encodes the index i in binary: stripe b is white when bit b is set.

    Black and white stripes survive lossy codecs (and B-frame interpolation) unlike fine grey
    levels.
    """
    bits = [(i >> b) & 1 for b in range(INDEX_BITS)]
    row = np.repeat(np.array(bits, dtype=np.uint8) * 255, STRIPE)
    return np.repeat(np.broadcast_to(row, (16, row.size))[:, :, None], 3, axis=2).copy()


def read_index(rgb: np.ndarray) -> int:
    """Inverse of `index_frame` on a decoded frame."""
    stripes = rgb.mean(axis=(0, 2)).reshape(INDEX_BITS, STRIPE).mean(axis=1)
    return sum(1 << b for b in range(INDEX_BITS) if stripes[b] > 127)


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
