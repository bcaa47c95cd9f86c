"""Frames (image files, or a video file and a time) to feature vectors, with an on-disk cache.

Typical use::

    spec = EmbedderSpec(model="resnet50")
    embedder = build_embedder(spec)
    cache = EmbeddingCache.from_spec(spec)
    vectors, stats = embed_frames([FrameRef(image="/data/a.jpg")], embedder, cache)
"""

from evaluator.embed.backbone import Embedder, build_embedder
from evaluator.embed.cache import EmbeddingCache
from evaluator.embed.errors import FrameReadError, WeightsUnavailableError
from evaluator.embed.frames import FrameRef
from evaluator.embed.pipeline import EmbedStats, embed_frames
from evaluator.embed.spec import EmbedderSpec

__all__ = [
    "EmbedStats",
    "Embedder",
    "EmbedderSpec",
    "EmbeddingCache",
    "FrameReadError",
    "FrameRef",
    "WeightsUnavailableError",
    "build_embedder",
    "embed_frames",
]
