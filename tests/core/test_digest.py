"""The dataset digest: a content hash independent of row order."""

from __future__ import annotations

import numpy as np
import pytest

from evaluator.core import digest
from evaluator.core.digest import dataset_digest


def test_digest_ignores_row_order_and_the_sign_of_zero() -> None:
    ids = np.array(["a", "b", "a"], dtype=object)
    ts = np.array([1.0, 2.0, 0.0])
    emb = np.array([[1, -0.0], [2, 3], [4, 5]], dtype=np.float32)
    perm = np.array([2, 0, 1])
    same = dataset_digest(ids[perm], ts[perm], np.abs(emb)[perm])
    assert dataset_digest(ids, ts, emb) == same


def test_digest_changes_with_any_content() -> None:
    ids = np.array(["a", "b"], dtype=object)
    ts = np.array([1.0, 2.0])
    emb = np.array([[1, 0], [2, 3]], dtype=np.float32)
    base = dataset_digest(ids, ts, emb)
    assert dataset_digest(np.array(["a", "c"], dtype=object), ts, emb) != base
    assert dataset_digest(ids, np.array([1.0, 2.5]), emb) != base
    assert dataset_digest(ids, ts, emb + np.float32(1e-6)) != base
    assert dataset_digest(ids, ts, None) != base
    # "007" and "7" are different videos.
    assert dataset_digest(np.array(["007"], dtype=object), ts[:1]) != dataset_digest(
        np.array(["7"], dtype=object), ts[:1]
    )


def _naive_video_digests(video, timestamp, embedding, n_videos):
    """Row by row with Python integers (mod 2**64): the definition, no chunks."""
    from evaluator.core.digest import _SEEDS, _weights

    m = (1 << 64) - 1

    def mix(x: int) -> int:
        x = (x + 0x9E3779B97F4A7C15) & m
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & m
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & m
        return x ^ (x >> 31)

    weights = _weights(embedding.shape[1]).tolist()
    out = [[0, 0] for _ in range(n_videos)]
    for v, t, e in zip(video.tolist(), timestamp, embedding, strict=True):
        bits = int(np.array([t + 0.0]).view(np.uint64)[0])
        words = (e.astype("<f4") + np.float32(0.0)).view(np.uint32).tolist()
        for j in (0, 1):
            vec = sum(w * x for w, x in zip(weights[j], words, strict=True)) & m
            out[v][j] = (out[v][j] + mix((mix(bits ^ int(_SEEDS[j])) + vec) & m)) & m
    return np.array(out, dtype=np.uint64).reshape(n_videos, 2)


@pytest.mark.parametrize("dim", [1, 3, 700])
@pytest.mark.parametrize("elements", [1, 64, 1 << 20])
def test_video_digests_equal_the_row_by_row_definition_for_any_chunking(
    dim: int, elements: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Chunks are cut by vector elements (wide vectors: fewer rows per chunk); the hash is the
    # same for every cut.
    monkeypatch.setattr(digest, "_ELEMENTS_PER_CHUNK", elements)
    rng = np.random.default_rng(dim + elements)
    n = 37
    video = rng.integers(0, 5, n)
    ts = rng.uniform(-1, 100, n).round(2)
    ts[:3] = [0.0, -0.0, 3.0]
    emb = rng.standard_normal((n, dim)).astype(np.float32)
    emb[0, 0] = -0.0
    got = digest.video_digests(video, ts, emb, 6)
    np.testing.assert_array_equal(got, _naive_video_digests(video, ts, emb, 6))
    assert not got[5].any()  # a code without rows
