"""The embedding cache: hits and misses, key identity, concurrent writers."""

from __future__ import annotations

import multiprocessing
import shutil

import numpy as np
import pytest
from cache_writer import DIM, key_of, vector_of, write_many
from embed_testkit import build_quietly, small_spec
from PIL import Image

from evaluator.embed import EmbeddingCache, EmbedStats, FrameRef, embed_frames
from evaluator.embed.cache import cache_key, namespace_of


def test_second_call_is_served_from_cache(tmp_path, scene_images, small_embedder):
    cache = EmbeddingCache(tmp_path / "cache")
    frames = [FrameRef(image=str(p)) for p in scene_images]
    first, stats1 = embed_frames(frames, small_embedder, cache)
    assert stats1 == EmbedStats(n_computed=6, n_cached=0)
    # Reopened, as another process would: only the files carry state.
    more = [*frames, FrameRef(image=str(scene_images[0]))]
    second, stats2 = embed_frames(more, small_embedder, EmbeddingCache(tmp_path / "cache"))
    assert stats2 == EmbedStats(n_computed=0, n_cached=6)
    np.testing.assert_array_equal(second[:6], first)
    np.testing.assert_array_equal(second[6], first[0])
    direct = small_embedder.embed_images([Image.open(p).convert("RGB") for p in scene_images])
    np.testing.assert_array_equal(first, direct)


def test_identical_frames_are_embedded_once(tmp_path, scene_images, small_embedder):
    copy = tmp_path / "copy.png"
    shutil.copy(scene_images[1], copy)  # same bytes under another name: same frame
    frames = [FrameRef(image=str(p)) for p in (scene_images[1], copy, scene_images[1])]
    vectors, stats = embed_frames(frames, small_embedder, None)
    assert stats == EmbedStats(n_computed=1, n_cached=0)
    np.testing.assert_array_equal(vectors[0], vectors[1])
    np.testing.assert_array_equal(vectors[0], vectors[2])


def test_new_identity_means_new_keys(tmp_path, scene_images, small_embedder):
    other = build_quietly(small_spec(image_size=40))  # other preprocessing, same weights
    assert other.identity != small_embedder.identity
    assert cache_key("image:abc", other.identity) != cache_key("image:abc", small_embedder.identity)
    assert namespace_of(other.identity) != namespace_of(small_embedder.identity)
    cache = EmbeddingCache(tmp_path / "cache")
    frames = [FrameRef(image=str(p)) for p in scene_images[:3]]
    embed_frames(frames, small_embedder, cache)
    _, stats = embed_frames(frames, other, cache)
    assert stats == EmbedStats(n_computed=3, n_cached=0)
    _, stats = embed_frames(frames, small_embedder, cache)
    assert stats == EmbedStats(n_computed=0, n_cached=3)


def test_video_frames_are_cached_by_timestamp(tmp_path, index_video, small_embedder):
    cache = EmbeddingCache(tmp_path / "cache")
    frames = [FrameRef(video=str(index_video), timestamp=t) for t in (0.3, 1.7, 0.3)]
    first, stats = embed_frames(frames, small_embedder, cache)
    assert (stats.n_computed, stats.n_cached) == (2, 0)
    assert stats.n_decoded >= 2  # from the keyframe before each frame
    frames.append(FrameRef(video=str(index_video), timestamp=2.2))
    second, stats = embed_frames(frames, small_embedder, cache)
    assert (stats.n_computed, stats.n_cached) == (1, 2)
    np.testing.assert_array_equal(second[:3], first)


def test_put_get_roundtrip_and_misses(tmp_path):
    cache = EmbeddingCache(tmp_path)
    keys = [key_of(i) for i in range(10)]
    cache.put("ns", keys[:6], np.stack([vector_of(k) for k in keys[:6]]))
    found, vectors = cache.get("ns", keys)
    assert found.tolist() == [True] * 6 + [False] * 4
    np.testing.assert_array_equal(vectors, np.stack([vector_of(k) for k in keys[:6]]))
    assert cache.get("other-namespace", keys)[1] is None
    with pytest.raises(ValueError, match="3 keys for vectors of shape"):
        cache.put("ns", keys[:3], np.zeros((2, DIM)))


# A torn shard would only surface as the reader's "skipping unreadable shard" warning.
@pytest.mark.filterwarnings("error")
def test_two_concurrent_writers_leave_a_consistent_cache(tmp_path):
    root = str(tmp_path / "cache")
    # fork: a spawned child would re-import torch through evaluator.embed, costing seconds; the
    # children only touch numpy and files, so forking a process that holds torch is safe.
    ctx = multiprocessing.get_context("fork")
    # Overlapping ranges: keys 100-299 are written by both processes at about the same time.
    writers = [
        ctx.Process(target=write_many, args=(root, "ns", 0, 300, 7)),
        ctx.Process(target=write_many, args=(root, "ns", 100, 400, 5)),
    ]
    for process in writers:
        process.start()
    reader = EmbeddingCache(root)
    keys = [key_of(i) for i in range(400)]
    expected = np.stack([vector_of(k) for k in keys])
    reads = 0
    # Read while they write: whatever is visible must already be complete and correct.
    while any(p.is_alive() for p in writers) or reads == 0:
        found, vectors = reader.get("ns", keys)
        if vectors is not None:
            np.testing.assert_array_equal(vectors, expected[found])
        reads += 1
    for process in writers:
        process.join(timeout=60)
        assert process.exitcode == 0
    found, vectors = EmbeddingCache(root).get("ns", keys)
    assert found.all()
    np.testing.assert_array_equal(vectors, expected)
    leftovers = [p.name for p in (tmp_path / "cache").rglob("*") if ".tmp-" in p.name]
    assert leftovers == []
