"""Backbones: feature width, determinism, weight loading and the offline error."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
import torchvision
from embed_testkit import build_quietly, render_frame, small_spec

from evaluator.embed import EmbedderSpec, WeightsUnavailableError, build_embedder


@pytest.mark.parametrize(("model", "dim"), [("resnet18", 512), ("mobilenet_v2", 1280)])
def test_feature_width(model, dim):
    embedder = build_quietly(small_spec(model=model))
    images = [render_frame(s, 0.0, size=40) for s in range(3)]
    vectors = embedder.embed_images(images)
    assert embedder.dim == dim
    assert embedder.params["embedder.dim"] == str(dim)
    assert vectors.shape == (3, dim)
    assert vectors.dtype == np.float32


def test_random_weights_warn_and_are_reproducible():
    images = [render_frame(s, 0.5, size=40) for s in range(5)]
    with pytest.warns(UserWarning, match="random weights.*meaningless except for testing"):
        first = build_embedder(small_spec())
    with pytest.warns(UserWarning, match="random weights"):
        second = build_embedder(small_spec(batch_size=2))
    a = first.embed_images(images)
    assert first.identity == second.identity  # batch size is not part of what a vector means
    np.testing.assert_array_equal(a, first.embed_images(images))
    # Another batch split may change the float summation order, nothing more.
    np.testing.assert_allclose(a, second.embed_images(images), rtol=1e-5, atol=1e-5)
    assert not np.allclose(a[0], a[1])


def test_array_and_pil_inputs_agree(small_embedder):
    image = render_frame(1, 0.0, size=40)
    from_pil = small_embedder.embed_images([image])
    from_array = small_embedder.embed_images([np.asarray(image)])
    np.testing.assert_array_equal(from_pil, from_array)
    with pytest.raises(ValueError, match=r"uint8 arrays of shape \(H, W, 3\)"):
        small_embedder.embed_images([np.zeros((8, 8, 4), dtype=np.uint8)])


def _saved_resnet18(path, seed=123, drop_head=False):
    torch.manual_seed(seed)
    state = torchvision.models.resnet18().state_dict()
    if drop_head:
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    torch.save(state, path)
    return state


@pytest.mark.parametrize("drop_head", [False, True])
def test_weights_path_loads_the_exact_tensors(tmp_path, drop_head):
    path = tmp_path / "resnet18.pt"
    saved = _saved_resnet18(path, drop_head=drop_head)
    embedder = build_embedder(small_spec(weights="IMAGENET1K_V1", weights_path=str(path)))
    loaded = embedder.model.state_dict()
    backbone_keys = [k for k in saved if not k.startswith("fc.")]
    assert set(loaded) == set(backbone_keys)  # the head is gone
    for key in backbone_keys:
        torch.testing.assert_close(loaded[key], saved[key], rtol=0, atol=0)
    assert embedder.params["embedder.weights_sha256"] in embedder.identity
    assert len(embedder.params["embedder.weights_sha256"]) == 64


def test_weights_path_of_another_model_is_refused(tmp_path):
    path = tmp_path / "mobilenet.pt"
    torch.save(torchvision.models.mobilenet_v2().state_dict(), path)
    with pytest.raises(ValueError, match=r"does not fit torchvision model ResNet.*missing keys"):
        build_embedder(small_spec(weights_path=str(path)))


def test_missing_weights_path_says_how_to_supply_weights(tmp_path):
    with pytest.raises(WeightsUnavailableError, match=r"does not exist.*embedder\.weights_path="):
        build_embedder(small_spec(weights_path=str(tmp_path / "nope.pt")))


def test_no_network_and_no_local_weights_raise(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    # The sandbox has no network anyway; failing the fetch here keeps the test offline and fast
    # on machines that do have one.
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsUnavailableError) as info:
        build_embedder(EmbedderSpec(model="resnet18", weights="IMAGENET1K_V1", cache_dir="off"))
    message = str(info.value)
    assert "no network" in message
    assert "embedder.weights_path=/path/to/state_dict.pt" in message
    assert "embedder.weights=null" in message
    assert "$TORCH_HOME/hub/checkpoints" in message
    assert str(tmp_path / "torch_home" / "hub") in message


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        ({"model": "resnet_9000"}, ValueError, "not a torchvision classification model"),
        ({"model": "squeezenet1_0"}, ValueError, "no final Linear layer"),
        ({"weights": "IMAGENET9K"}, ValueError, "not a weights name of resnet18"),
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
    ],
)
def test_bad_specs(fields, error, match):
    with pytest.raises(error, match=match):
        build_quietly(small_spec(**fields))


def test_cache_dir_setting():
    assert EmbedderSpec(cache_dir="off").resolved_cache_dir() is None
    assert EmbedderSpec(cache_dir="").resolved_cache_dir() is None
    default = EmbedderSpec().resolved_cache_dir()
    assert default is not None and default.parts[-2:] == ("video-evaluator", "embeddings")
