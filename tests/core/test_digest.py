"""The dataset digest: a content hash independent of row order."""

from __future__ import annotations

import numpy as np

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
