"""Write the demo sets: experts / baseline / candidate (poster), episodes_* and episode_slices
(episode task).

With --images, also demo_data/images/: the frames of the first --image-videos videos rendered
as small PNGs (frames of one scene look alike) and the same tables with an `image` column
instead of `embedding`, to demonstrate embedder=torchvision / embedder=mobilenet_v2_deepsort.

Usage: python scripts/make_demo_data.py [--out demo_data] [--videos 300] [--episode-videos 600]
[--seed 0] [--images]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from evaluator.demo.episode_data import make_episode_demo
from evaluator.demo.poster_data import make_demo_set


def write_images(
    table: pd.DataFrame, scenes: np.ndarray, keep: set[str], root: Path, size: int
) -> pd.DataFrame:
    """Render each row's frame (once per distinct file) and return the table with `image`."""
    from evaluator.demo.images import render_frame

    rows = table[table.video_id.isin(keep)].drop(columns="embedding").copy()
    scene = scenes[rows.index.to_numpy()]
    names = [f"{v}/{t:09.3f}.png" for v, t in zip(rows.video_id, rows.timestamp, strict=True)]
    for name, s, t in zip(names, scene, rows.timestamp, strict=True):
        path = root / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            render_frame(int(s), float(t), size=size).save(path)
    rows["image"] = names
    return rows.reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_data", type=Path)
    parser.add_argument("--videos", default=300, type=int)
    parser.add_argument("--dim", default=512, type=int)
    parser.add_argument("--episode-videos", default=600, type=int)
    parser.add_argument("--seed", default=0, type=int)
    parser.add_argument("--images", action="store_true", help="also render frames as PNGs")
    parser.add_argument("--image-videos", default=40, type=int)
    parser.add_argument("--image-size", default=96, type=int)
    args = parser.parse_args()
    demo = make_demo_set(args.videos, dim=args.dim, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    demo.experts.to_parquet(args.out / "experts.parquet", index=False)
    for name, table in demo.models.items():
        table.to_parquet(args.out / f"{name}.parquet", index=False)
    print(
        f"wrote {args.out}/experts.parquet ({len(demo.experts)} rows) and "
        + ", ".join(f"{n}.parquet ({len(t)} rows)" for n, t in demo.models.items())
    )
    episodes = make_episode_demo(args.episode_videos, seed=args.seed)
    for name, table in episodes.models.items():
        # episode_baseline -> episodes_baseline.parquet: the truth columns + that model's reading.
        table.to_parquet(
            args.out / f"episodes_{name.removeprefix('episode_')}.parquet", index=False
        )
    # The cases of the text metrics (where the number is burned in, font, language): data.slices.
    episodes.cases.to_parquet(args.out / "episode_slices.parquet", index=False)
    print(
        f"wrote {args.out}/"
        + ", ".join(f"episodes_{n.removeprefix('episode_')}.parquet" for n in episodes.models)
        + f" ({args.episode_videos} videos each) and episode_slices.parquet"
    )
    if args.images:
        root = args.out / "images"
        keep = set(demo.experts.video_id.drop_duplicates().iloc[: args.image_videos])
        tables = {"experts": demo.experts, **demo.models}
        for name, table in tables.items():
            rows = write_images(table, demo.scenes[name], keep, root, args.image_size)
            rows.to_parquet(root / f"{name}.parquet", index=False)
        n_files = sum(1 for _ in root.rglob("*.png"))
        print(f"wrote {n_files} frame images and {', '.join(tables)} tables to {root}")


if __name__ == "__main__":
    main()
