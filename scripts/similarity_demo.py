"""How well ``matching.min_cosine`` separates frames, per embedder, with and without centring.

On the synthetic demo scenes (`evaluator.demo.images`): every video is one scene with expert
frames at 0, 2, ..., 10 s and "same-moment" model frames 0.5 s after each. Printed per embedder
and ``matching.center``: the calibration figures the evaluation logs (the share of unrelated
pairs, expert frames of two different videos, with cosine >= min_cosine; their median and 99th
percentile) and the share of same-moment pairs that pass min_cosine (what matching should keep).

Usage: python scripts/similarity_demo.py [--videos 24] [--min-cosine 0.5] [--embedders ...]
Embedders: deepsort (offline MobileNetV2), resnet18-random (torchvision, random weights),
vit-random (timm vit_small_patch16_224, random weights), any `timm:<name>` (pretrained: needs
the weights in the Hugging Face cache).
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import replace

import numpy as np

from evaluator.core.calibration import COSINE_BINS, ExpertPool, calibrate, centred, pair_cosines
from evaluator.demo.images import render_frame
from evaluator.embed import EmbedderSpec, build_embedder
from evaluator.embed.timm_backbone import build_timm_embedder

EXPERT_TIMES = (0.0, 2.0, 4.0, 6.0, 8.0, 10.0)
LAG_S = 0.5


def _embedder(name: str):
    spec = EmbedderSpec(device="cpu", progress=False, batch_size=32, cache_dir="off")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # random weights, on purpose here
        if name == "deepsort":
            return build_embedder(replace(spec, model="mobilenet_v2_deepsort", weights=None))
        if name == "resnet18-random":
            return build_embedder(replace(spec, model="resnet18", weights=None))
        if name == "vit-random":
            return build_timm_embedder(
                spec, model_name="vit_small_patch16_224", pretrained=False, checkpoint=None
            )
        if name.startswith("timm:"):
            return build_timm_embedder(spec, model_name=name[5:], pretrained=True, checkpoint=None)
    raise SystemExit(f"unknown embedder {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--min-cosine", type=float, default=0.5)
    parser.add_argument(
        "--embedders", default="deepsort,resnet18-random,vit-random", help="comma-separated"
    )
    args = parser.parse_args()
    n = args.videos
    experts = [render_frame(v, t) for v in range(n) for t in EXPERT_TIMES]
    model = [render_frame(v, t + LAG_S) for v in range(n) for t in EXPERT_TIMES]
    video = np.repeat(np.arange(n), len(EXPERT_TIMES))
    print(
        f"{n} videos x {len(EXPERT_TIMES)} expert frames; same-moment pairs: model frame "
        f"{LAG_S} s after each expert frame; min_cosine={args.min_cosine}"
    )
    header = "embedder          center   false_match_rate  median    q99   same_moment_pass"
    print(header)
    for name in args.embedders.split(","):
        emb = _embedder(name)
        e_vec = emb.embed_images(experts)
        m_vec = emb.embed_images(model)
        mean = e_vec.astype(np.float64).mean(axis=0)
        for center in ("off", "experts"):
            c = None if center == "off" else mean
            pool = ExpertPool(video, e_vec, np.zeros(COSINE_BINS.shape[0] - 1, np.int64))
            cal = calibrate(pool, min_cosine=args.min_cosine, center=c, max_pairs=10**6, seed=0)
            both = np.concatenate([e_vec, m_vec])
            if c is not None:
                both = centred(both, c)
            k = e_vec.shape[0]
            same = pair_cosines(both, np.arange(k), np.arange(k) + k)
            passing = float(np.mean(same >= args.min_cosine))
            print(
                f"{name:<17} {center:<8} {cal.false_match_rate:>16.4f} {cal.median:>7.3f} "
                f"{cal.q99:>7.3f} {passing:>17.4f}"
            )


if __name__ == "__main__":
    main()
