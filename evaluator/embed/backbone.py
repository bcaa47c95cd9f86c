"""torchvision backbones with the classifier head removed, and their preprocessing."""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import nn
from torchvision import transforms as T

from evaluator.embed.deepsort import PACKAGE_PIN, bundled_weights_path, load_state_dict
from evaluator.embed.errors import WEIGHTS_HELP, WeightsUnavailableError
from evaluator.embed.spec import EmbedderSpec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEEPSORT_MODEL = "mobilenet_v2_deepsort"
# Random weights are drawn under this seed so that two builds agree (and cache entries stay valid
# within one torch version, which the identity records).
RANDOM_INIT_SEED = 0
# Bumped whenever a change here alters the vectors for an unchanged spec, to orphan old cache
# entries.
IDENTITY_VERSION = "1"


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes.

    Args:
        path: The file.

    Returns:
        The 64-character hex digest.
    """
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _strip_head(model: nn.Module) -> int:
    """Replace the model's last Linear layer with Identity and return its input width.

    In every torchvision classifier the last Linear (in registration order) maps the pooled
    penultimate features to the logits: ``fc`` (ResNet, RegNet, GoogLeNet), ``classifier[-1]``
    (MobileNet, EfficientNet, ConvNeXt, VGG, MaxViT), ``heads.head`` (ViT), ``head`` (Swin). The
    auxiliary heads of GoogLeNet/Inception are registered before ``fc`` and unused in eval mode.
    """
    last: tuple[str, nn.Linear] | None = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = (name, module)
    if last is None:
        raise ValueError(
            f"{type(model).__name__} has no final Linear layer to remove (e.g. squeezenet ends "
            "in a convolution); choose another embedder.model"
        )
    last_name, linear = last
    parent_name, _, child = last_name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, nn.Identity())
    return linear.in_features


def _head_prefixes(model: nn.Module) -> tuple[str, ...]:
    """State-dict prefixes of the final Linear layer (before it is stripped)."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return (names[-1] + ".",) if names else ()


def _plain_transform(image_size: int) -> Callable[[Image.Image], torch.Tensor]:
    # Same recipe as torchvision's ImageNet evaluation (resize the short side, centre crop),
    # scaled so that the crop is image_size.
    return T.Compose(
        [
            T.Resize(image_size, interpolation=T.InterpolationMode.BILINEAR, antialias=True),
            T.CenterCrop(image_size),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def _describe(transform: object) -> str:
    return re.sub(r"\s+", " ", repr(transform)).strip()


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"embedder.device={name!r} but CUDA is not available on this machine")
    return device


class Embedder:
    """A backbone that maps RGB images to pooled penultimate-layer features.

    Build one with `build_embedder`. Attributes are read-only by convention.

    Attributes:
        spec: The spec it was built from.
        identity: Stable description of model, weights, preprocessing and precision; two
            embedders with the same identity produce the same vectors (the cache relies on it).
        params: Flat string params for MLflow (``embedder.model``, ``embedder.weights``, ...).
        dim: Length of each feature vector.
        device: The torch device the model runs on.
        transform: PIL image -> normalised ``(3, H, W)`` float tensor.
    """

    def __init__(
        self,
        spec: EmbedderSpec,
        model: nn.Module,
        transform: Callable[[Image.Image], torch.Tensor],
        dim: int,
        weights_label: str,
        weights_sha256: str,
        device: torch.device,
    ) -> None:
        self.spec = spec
        self.transform = transform
        self.dim = dim
        self.device = device
        self.use_amp = spec.amp and device.type == "cuda"
        self.memory_format = torch.channels_last if spec.channels_last else torch.contiguous_format
        self.model = model.eval().to(device).to(memory_format=self.memory_format)
        precision = "bf16-autocast" if self.use_amp else "fp32"
        preprocessing = _describe(transform)
        self.identity = (
            f"model={spec.model}|weights={weights_label}|weights_sha256={weights_sha256}"
            f"|preprocessing={preprocessing}|precision={precision}|v={IDENTITY_VERSION}"
        )
        self.params: dict[str, str] = {
            "embedder.model": spec.model,
            "embedder.weights": weights_label,
            "embedder.weights_sha256": weights_sha256,
            "embedder.dim": str(dim),
            "embedder.device": str(device),
            "embedder.precision": precision,
            "embedder.preprocessing": preprocessing,
            "embedder.identity_sha256": hashlib.sha256(self.identity.encode()).hexdigest(),
        }

    def preprocess(self, image: Image.Image | np.ndarray) -> torch.Tensor:
        """Turn one image into the model's input tensor.

        Args:
            image: A PIL image, or an ``(H, W, 3)`` / ``(H, W)`` uint8 array in RGB order.

        Returns:
            A ``(3, H', W')`` float32 tensor.

        Raises:
            ValueError: The array is not uint8 of shape ``(H, W)`` or ``(H, W, 3)``.
        """
        if isinstance(image, np.ndarray):
            if (
                image.dtype != np.uint8
                or image.ndim not in (2, 3)
                or (image.ndim == 3 and image.shape[2] != 3)
            ):
                raise ValueError(
                    "images must be uint8 arrays of shape (H, W, 3) or (H, W), got "
                    f"{image.dtype} {image.shape}"
                )
            image = Image.fromarray(image)
        if image.mode != "RGB":
            image = image.convert("RGB")
        return self.transform(image)

    @torch.inference_mode()
    def embed_batch(self, batch: torch.Tensor) -> np.ndarray:
        """Run the model on one preprocessed batch.

        Args:
            batch: ``(N, 3, H, W)`` float tensor from `preprocess`.

        Returns:
            ``(N, dim)`` float32 array on the CPU.
        """
        x = batch.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
            out = self.model(x)
        return out.float().cpu().numpy().astype(np.float32, copy=False)

    def embed_tensors(
        self, tensors: Iterable[torch.Tensor], total: int | None = None, desc: str | None = None
    ) -> Iterable[np.ndarray]:
        """Embed a stream of preprocessed images, batch by batch.

        Args:
            tensors: ``(3, H, W)`` tensors.
            total: Number of tensors, for the progress bar.
            desc: The progress bar's label (default ``embed <model>``).

        Yields:
            ``(n, dim)`` float32 arrays, at most ``spec.batch_size`` rows each, in input order.
        """
        bar = self._progress(total, desc)
        pending: list[torch.Tensor] = []
        try:
            for tensor in tensors:
                pending.append(tensor)
                if len(pending) == self.spec.batch_size:
                    yield self.embed_batch(torch.stack(pending))
                    bar.update(len(pending))
                    pending = []
            if pending:
                yield self.embed_batch(torch.stack(pending))
                bar.update(len(pending))
        finally:
            bar.close()

    def embed_images(self, images: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
        """Embed in-memory images.

        Args:
            images: PIL images or uint8 RGB arrays (``(H, W, 3)``).

        Returns:
            ``(len(images), dim)`` float32 array.

        Raises:
            ValueError: An array has the wrong dtype or shape.
        """
        parts = list(self.embed_tensors((self.preprocess(im) for im in images), len(images)))
        if not parts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(parts, axis=0)

    def _progress(self, total: int | None, desc: str | None = None):
        from tqdm.auto import tqdm

        # A bar for a single batch is noise; longer jobs deserve one.
        show = self.spec.progress and total is not None and total > self.spec.batch_size
        desc = desc or f"embed {self.spec.model}"
        return tqdm(total=total, desc=desc, unit="img", disable=not show)


def embedder_parts(embedder: Embedder) -> tuple[Any, ...]:
    """What rebuilds an embedder elsewhere (a Spark executor): spec, CPU model, transform, ...

    The parts pickle; `rebuild_embedder` turns them back into an embedder whose identity (and
    so whose cache keys) equals a local one's on the same kind of device.
    """
    p = embedder.params
    model = embedder.model.to("cpu").to(memory_format=torch.contiguous_format)
    return (
        embedder.spec,
        model,
        embedder.transform,
        embedder.dim,
        p["embedder.weights"],
        p["embedder.weights_sha256"],
    )


def rebuild_embedder(parts: tuple[Any, ...]) -> Embedder:
    """The embedder of `embedder_parts`, on this machine's device (``spec.device``, e.g. auto)."""
    spec, model, transform, dim, label, sha = parts
    return Embedder(spec, model, transform, dim, label, sha, _resolve_device(spec.device))


def _load_weights_file(model: nn.Module, path: str, head: tuple[str, ...]) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise WeightsUnavailableError(
            f"cannot load embedder.weights_path={path}: {exc}. {WEIGHTS_HELP}"
        ) from exc
    if not isinstance(state, dict):
        raise ValueError(
            f"embedder.weights_path={path} holds a {type(state).__name__}, expected a state dict "
            "saved with torch.save(model.state_dict(), path)"
        )
    missing, unexpected = model.load_state_dict(state, strict=False)
    # A backbone-only file (no classifier) is fine: the head is removed anyway.
    missing = [k for k in missing if not k.startswith(head)]
    if missing or unexpected:
        raise ValueError(
            f"embedder.weights_path={path} does not fit torchvision model "
            f"{type(model).__name__}: missing keys {missing[:5]}, unexpected keys {unexpected[:5]}"
        )


def random_model(build: Callable[[], nn.Module], why: str) -> nn.Module:
    """A model with random weights drawn under `RANDOM_INIT_SEED` (two builds agree), with a
    warning that starts with ``why``: its vectors are meaningless except for testing."""
    warnings.warn(f"{why}: its vectors are meaningless except for testing", UserWarning, 3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        return build()


def build_embedder(spec: EmbedderSpec) -> Embedder:
    """Build the embedder a spec describes; never downloads silently into random weights.

    Args:
        spec: The embedder settings.

    Returns:
        A ready `Embedder` in eval mode on the chosen device.

    Raises:
        ValueError: Unknown model or weights name, a weights file that does not fit the model,
            or a CUDA device requested where there is none.
        WeightsUnavailableError: Pretrained weights can be neither downloaded nor found locally.
    """
    device = _resolve_device(spec.device)
    if spec.model == DEEPSORT_MODEL:
        arch = "mobilenet_v2"
    else:
        arch = spec.model
    if arch not in torchvision.models.list_models(module=torchvision.models):
        raise ValueError(
            f"embedder.model={spec.model!r} is not a torchvision classification model; choose "
            f"one of {[*torchvision.models.list_models(module=torchvision.models), DEEPSORT_MODEL]}"
        )

    if spec.model == DEEPSORT_MODEL:
        path = spec.weights_path or str(bundled_weights_path())
        model = torchvision.models.get_model(arch, weights=None)
        dim = _strip_head(model)
        model.load_state_dict(load_state_dict(path), strict=True)
        label = f"{PACKAGE_PIN}:{Path(path).name}" if not spec.weights_path else path
        return Embedder(
            spec, model, _plain_transform(spec.image_size), dim, label, file_sha256(path), device
        )

    if spec.weights_path is not None:
        path = spec.weights_path
        if not os.path.isfile(path):
            raise WeightsUnavailableError(
                f"embedder.weights_path={path} does not exist. {WEIGHTS_HELP}"
            )
        model = torchvision.models.get_model(arch, weights=None)
        head = _head_prefixes(model)
        _load_weights_file(model, path, head)
        dim = _strip_head(model)
        return Embedder(
            spec,
            model,
            _plain_transform(spec.image_size),
            dim,
            f"file:{Path(path).name}",
            file_sha256(path),
            device,
        )

    if spec.weights is None:
        model = random_model(
            lambda: torchvision.models.get_model(arch, weights=None),
            f"embedder {spec.model} uses random weights (embedder.weights=null)",
        )
        dim = _strip_head(model)
        label = f"random(seed={RANDOM_INIT_SEED},torch={torch.__version__})"
        return Embedder(spec, model, _plain_transform(spec.image_size), dim, label, "", device)

    enum = torchvision.models.get_model_weights(arch)
    try:
        weights = enum[spec.weights] if spec.weights != "DEFAULT" else enum.DEFAULT
    except KeyError:
        raise ValueError(
            f"embedder.weights={spec.weights!r} is not a weights name of {arch}; choose one of "
            f"{['DEFAULT', *enum.__members__]}"
        ) from None
    try:
        model = torchvision.models.get_model(arch, weights=weights)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        raise WeightsUnavailableError(
            f"cannot download the {arch} weights {weights} from {weights.url} (no network?) and "
            f"they are not in the torch hub cache at {torch.hub.get_dir()}/checkpoints: {exc}. "
            f"{WEIGHTS_HELP}"
        ) from exc
    dim = _strip_head(model)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
    sha = file_sha256(cached) if cached.is_file() else ""
    return Embedder(spec, model, weights.transforms(), dim, str(weights), sha, device)
