"""``embedder=timm``: any timm image model as the backbone (DINOv2 and CLIP image towers too).

The model is built with ``num_classes=0``, so its forward pass returns the pooled (pre-logits)
features; the preprocessing is the model's own (timm's ``resolve_data_config`` +
``create_transform``: its input size, interpolation, mean and std). Weights come from one of:

- ``embedder.checkpoint``: a local file (``.safetensors``, ``.pth``, ``.bin``) loaded as timm
  loads its pretrained weights (classifier weights in the file are dropped);
- ``embedder.pretrained=true``: timm's pretrained weights from the Hugging Face hub (or its
  local cache, ``$HF_HOME``);
- ``embedder.pretrained=false``: random weights drawn under a fixed seed (tests only).

timm is an optional dependency (``pip install "video-evaluator[timm]"``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from evaluator.embed.backbone import (
    RANDOM_INIT_SEED,
    Embedder,
    _resolve_device,
    file_sha256,
    random_model,
)
from evaluator.embed.errors import WeightsUnavailableError
from evaluator.embed.spec import EmbedderSpec

TIMM_WEIGHTS_HELP = (
    "Supply the weights as a local file: download the model's weights where a network exists "
    "(e.g. `huggingface-cli download timm/<model> model.safetensors`) and set "
    "embedder.checkpoint=/path/to/model.safetensors (a .pth / .bin state dict works too); or "
    "copy a populated Hugging Face cache ($HF_HOME, default ~/.cache/huggingface) to this "
    "machine and keep embedder.pretrained=true."
)


def _timm() -> Any:
    try:
        import timm
    except ImportError:
        raise ValueError(
            'embedder=timm needs the timm package: pip install "video-evaluator[timm]"'
        ) from None
    return timm


def build_timm_embedder(
    spec: EmbedderSpec, *, model_name: str | None, pretrained: bool, checkpoint: str | None
) -> Embedder:
    """An `Embedder` on a timm model's pooled features.

    Args:
        spec: batch size, device, precision, cache, progress (``spec.model`` is replaced by
            ``timm/<model_name>`` in the embedder's identity and params).
        model_name: a timm model name, with or without a pretrained tag
            (``vit_small_patch14_dinov2.lvd142m``, ``vit_base_patch16_clip_224.openai``).
        pretrained: load timm's pretrained weights (from the hub or its cache).
        checkpoint: a local weights file; wins over ``pretrained``.

    Returns:
        A ready embedder in eval mode on the chosen device.

    Raises:
        ValueError: timm missing, an unknown model name, or a checkpoint that does not fit.
        WeightsUnavailableError: the weights cannot be found (the message says how to supply a
            local file).
    """
    timm = _timm()
    if not model_name:
        raise ValueError(
            "embedder=timm needs embedder.model_name (a timm model, e.g. "
            "vit_small_patch14_dinov2.lvd142m, vit_base_patch16_clip_224.openai, resnet50)"
        )
    if not timm.is_model(model_name):
        close = timm.list_models(f"*{model_name.split('.')[0][:12]}*")[:8]
        raise ValueError(
            f"embedder.model_name={model_name!r} is not a timm model"
            + (f"; close names: {close}" if close else "")
        )
    device = _resolve_device(spec.device)
    if checkpoint is not None:
        if not os.path.isfile(checkpoint):
            raise WeightsUnavailableError(
                f"embedder.checkpoint={checkpoint} does not exist. {TIMM_WEIGHTS_HELP}"
            )
        # timm loads with strict=False once the classifier is dropped and only logs keys that
        # did not fit; a file that fits must leave none (the head is gone with num_classes=0).
        with _KeyReport() as report:
            try:
                model = timm.create_model(
                    model_name,
                    pretrained=True,
                    num_classes=0,
                    pretrained_cfg_overlay={"file": str(checkpoint)},
                )
            except (RuntimeError, KeyError) as exc:
                report.messages.append(str(exc).splitlines()[0])
        if report.messages:
            raise ValueError(
                f"embedder.checkpoint={checkpoint} does not fit timm model {model_name}: "
                f"{report.messages[0][:300]}"
            )
        label, sha = f"file:{Path(checkpoint).name}", file_sha256(checkpoint)
    elif pretrained:
        try:
            model = timm.create_model(model_name, pretrained=True, num_classes=0)
        except OSError as exc:  # the hub's "not found / no network" errors are OSErrors
            raise WeightsUnavailableError(
                f"cannot load the pretrained weights of timm model {model_name} (no network, "
                f"and not in the Hugging Face cache?): {str(exc).splitlines()[0][:300]}. "
                f"{TIMM_WEIGHTS_HELP}"
            ) from exc
        cfg = model.pretrained_cfg
        label = f"timm:{cfg.get('hf_hub_id') or cfg.get('tag') or model_name}"
        sha = ""
    else:
        model = random_model(
            lambda: timm.create_model(model_name, pretrained=False, num_classes=0),
            f"timm model {model_name} uses random weights (embedder.pretrained=false and no "
            "embedder.checkpoint)",
        )
        label, sha = f"random(seed={RANDOM_INIT_SEED},torch={torch.__version__})", ""
    data_config = timm.data.resolve_data_config({}, model=model)
    transform = timm.data.create_transform(**data_config)
    dim = _feature_dim(model, data_config["input_size"])
    named = replace(spec, model=f"timm/{model_name}")
    return Embedder(named, model, transform, dim, label, sha, device)


@torch.inference_mode()
def _feature_dim(model: torch.nn.Module, input_size: tuple[int, int, int]) -> int:
    """The length of the pooled features (one forward pass on a blank image)."""
    model.eval()
    out = model(torch.zeros((1, *input_size)))
    return int(out.reshape(1, -1).shape[1])


class _KeyReport(logging.Handler):
    """Collects timm's "Missing keys" / "Unexpected keys" messages while weights load."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []
        self._logger = logging.getLogger("timm.models._builder")
        self._level = self._logger.level

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(("Missing keys", "Unexpected keys")):
            self.messages.append(message)

    def __enter__(self) -> _KeyReport:
        self._logger.addHandler(self)
        self._logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)
