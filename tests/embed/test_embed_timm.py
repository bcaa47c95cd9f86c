"""``embedder=timm``: a tiny timm model (random weights, never downloaded) as the backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from evaluator.embed import EmbedderSpec, WeightsUnavailableError
from evaluator.embed.timm_backbone import build_timm_embedder

TINY = "test_vit"  # timm's 0.3M-parameter test ViT: 64-d features at 160 px


def _spec() -> EmbedderSpec:
    return EmbedderSpec(model="resnet50", weights=None, batch_size=4, device="cpu", progress=False)


def _images(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8) for _ in range(n)]


def _random(name: str = TINY):
    with pytest.warns(UserWarning, match="random weights"):
        return build_timm_embedder(_spec(), model_name=name, pretrained=False, checkpoint=None)


def test_random_weights_give_the_same_vectors_twice() -> None:
    a, b = _random(), _random()
    va, vb = a.embed_images(_images(5)), b.embed_images(_images(5))
    assert va.shape == (5, 64) and va.dtype == np.float32 and a.dim == 64
    np.testing.assert_array_equal(va, vb)
    assert a.params["embedder.model"] == f"timm/{TINY}"
    assert a.params["embedder.weights"].startswith("random(seed=0")
    assert a.identity == b.identity


def test_a_local_checkpoint_loads_the_saved_weights(tmp_path: Path) -> None:
    source = _random()
    path = tmp_path / "tiny.pth"
    torch.save(source.model.state_dict(), path)
    loaded = build_timm_embedder(_spec(), model_name=TINY, pretrained=True, checkpoint=str(path))
    np.testing.assert_array_equal(loaded.embed_images(_images(3)), source.embed_images(_images(3)))
    assert loaded.params["embedder.weights"] == "file:tiny.pth"
    assert len(loaded.params["embedder.weights_sha256"]) == 64


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"model_name": TINY, "checkpoint": "/no/such/file.safetensors"},
            WeightsUnavailableError,
            r"embedder.checkpoint=/no/such/file.safetensors does not exist.*"
            r"set embedder.checkpoint=",
        ),
        ({"model_name": "no_such_net", "checkpoint": None}, ValueError, "is not a timm model"),
        ({"model_name": None, "checkpoint": None}, ValueError, "needs embedder.model_name"),
    ],
)
def test_bad_settings_say_what_to_do(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        build_timm_embedder(_spec(), pretrained=True, **kwargs)


def test_a_checkpoint_of_another_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="does not fit timm model test_vit"):
        build_timm_embedder(_spec(), model_name=TINY, pretrained=True, checkpoint=str(path))
