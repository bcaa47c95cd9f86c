"""Throughput of the embed pipeline: decoding, the model, and the cache, side by side.

    python scripts/bench_embed.py [--n 256] [--models resnet18,resnet50] [--device auto]
    python scripts/bench_embed.py --models resnet50,timm:vit_small_patch14_dinov2 --device cuda
                                  [--weights-path FILE] [--cache-scale 200000]

Prints images/second at 224 px for each model: decode-only (PNG files and nearest-frame video
decoding, each with preprocessing), model-only (preprocessed tensors), cold (empty cache: hash +
decode + model + cache write) and warm (populated cache: hash + lookup). Weights are random
unless --weights-path is given; throughput does not depend on weight values. With
--cache-scale N it also times a cache holding N vectors: opening it and looking keys up.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from evaluator.demo.images import render_frame, write_video
from evaluator.embed import (
    EmbedderSpec,
    EmbeddingCache,
    FrameRef,
    build_embedder,
    embed_frames,
)
from evaluator.embed.backbone import Embedder, _plain_transform, _resolve_device
from evaluator.embed.cache import KEY_BYTES
from evaluator.embed.frames import decode_nearest_frames, read_image

SIZE = 224


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:8.1f}"


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def make_media(folder: Path, n: int) -> tuple[list[Path], Path]:
    """Write n distinct 256 px PNG frames and a 256 px, 10 fps mp4 of n frames."""
    images = []
    frames = []
    for i in range(n):
        image = render_frame(i % 16, i / 10, size=256)
        path = folder / f"frame{i:05d}.png"
        image.save(path)
        images.append(path)
        frames.append(image)
    video = write_video(folder / "bench.mp4", frames, fps=10, gop=30)
    return images, video


def _timm_embedder(spec: EmbedderSpec, name: str) -> Embedder:
    """A timm backbone with random weights (``timm:vit_small_patch14_dinov2`` is DINOv2
    ViT-S/14) at 224 px, run like any embedder: bf16 autocast and channels-last on CUDA."""
    import timm

    kwargs = {"img_size": SIZE} if "patch14" in name else {}
    model = timm.create_model(name[len("timm:") :], pretrained=False, num_classes=0, **kwargs)
    transform = _plain_transform(SIZE)
    device = _resolve_device(spec.device)
    return Embedder(spec, model, transform, model.num_features, "random", "", device)


def bench_model(name: str, args, images: list[Path], video: Path, folder: Path) -> dict:
    spec = EmbedderSpec(
        model=name,
        weights=None,
        weights_path=args.weights_path,
        batch_size=args.batch_size,
        device=args.device,
        image_size=SIZE,
        cache_dir=str(folder / f"cache-{name}"),
        progress=False,
        num_workers=args.num_workers,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # random weights on purpose
        embedder = _timm_embedder(spec, name) if name.startswith("timm:") else build_embedder(spec)
    n = len(images)
    _, t_png = _timed(lambda: [embedder.preprocess(read_image(p)) for p in images])
    times = [i / 10 for i in range(n)]
    _, t_video = _timed(
        lambda: [embedder.preprocess(rgb) for _, rgb, _ in decode_nearest_frames(video, times)]
    )
    batch = torch.stack([embedder.preprocess(read_image(p)) for p in images[: args.batch_size]])
    embedder.embed_batch(batch)  # warm-up: first call allocates and picks kernels
    reps = max(1, n // args.batch_size)
    _, t_model = _timed(lambda: [embedder.embed_batch(batch) for _ in range(reps)])
    refs = [FrameRef(image=str(p)) for p in images]
    cache = EmbeddingCache(spec.cache_dir)
    (_, cold_stats), t_cold = _timed(lambda: embed_frames(refs, embedder, cache))
    (_, warm_stats), t_warm = _timed(
        lambda: embed_frames(refs, embedder, EmbeddingCache(spec.cache_dir))
    )
    assert cold_stats.n_computed == n and warm_stats.n_cached == n
    return {
        "model": name,
        "dim": embedder.dim,
        "device": str(embedder.device),
        "decode_png": _rate(n, t_png),
        "decode_video": _rate(n, t_video),
        "model_only": _rate(reps * len(batch), t_model),
        "cold": _rate(n, t_cold),
        "warm": _rate(n, t_warm),
    }


def bench_cache_scale(n: int, dim: int, folder: Path) -> None:
    """Time a cache of n vectors: writing, opening (index load), and lookups."""
    rng = np.random.default_rng(0)
    keys = [rng.bytes(KEY_BYTES) for _ in range(n)]
    cache = EmbeddingCache(folder / "scale")
    chunk = 4096  # the flush size embed_frames uses
    start = time.perf_counter()
    for lo in range(0, n, chunk):
        part = keys[lo : lo + chunk]
        cache.put("ns", part, rng.standard_normal((len(part), dim), dtype=np.float32))
    t_write = time.perf_counter() - start
    fresh = EmbeddingCache(folder / "scale")
    probe = [keys[i] for i in rng.choice(n, 1000, replace=False)]
    (_, _), t_open = _timed(lambda: fresh.get("ns", probe[:1]))
    (found, _), t_probe = _timed(lambda: fresh.get("ns", probe))
    (found_all, _), t_all = _timed(lambda: fresh.get("ns", keys))
    assert found.all() and found_all.all()
    print(
        f"\ncache of {n} x {dim}-d vectors ({-(-n // chunk)} shards): write {t_write:.2f} s, "
        f"open + index {t_open:.2f} s, 1000 random lookups {t_probe * 1000:.1f} ms, "
        f"all {n} lookups {t_all:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=256, help="images per measurement")
    parser.add_argument("--models", default="resnet18,resnet50")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--weights-path", default=None, help="state dict (default: random)")
    parser.add_argument("--cache-scale", type=int, default=0, help="also time a cache of N vectors")
    parser.add_argument("--cache-dim", type=int, default=512)
    args = parser.parse_args()
    if args.device == "cpu" or (args.device == "auto" and not torch.cuda.is_available()):
        torch.set_num_threads(2)  # the reference machine has 2 cores
    with tempfile.TemporaryDirectory(prefix="bench_embed_") as tmp:
        folder = Path(tmp)
        images, video = make_media(folder, args.n)
        print(
            f"images/second at {SIZE} px, n={args.n}, batch {args.batch_size}, "
            f"torch threads {torch.get_num_threads()}"
        )
        columns = [
            "model",
            "dim",
            "device",
            "decode_png",
            "decode_video",
            "model_only",
            "cold",
            "warm",
        ]
        print(" | ".join(f"{c:>12}" for c in columns))
        for name in args.models.split(","):
            row = bench_model(name.strip(), args, images, video, folder)
            print(" | ".join(f"{str(row[c]).strip():>12}" for c in columns), flush=True)
        if args.cache_scale:
            bench_cache_scale(args.cache_scale, args.cache_dim, folder)


if __name__ == "__main__":
    main()
