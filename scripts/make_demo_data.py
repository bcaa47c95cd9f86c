"""Write the demo sets: experts / baseline / candidate (poster) and episodes_* (episode task).

Usage: python scripts/make_demo_data.py [--out demo_data] [--videos 300] [--episode-videos 600]
[--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evaluator.demo_data import make_demo_set
from evaluator.demo_episodes import make_episode_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_data", type=Path)
    parser.add_argument("--videos", default=300, type=int)
    parser.add_argument("--dim", default=512, type=int)
    parser.add_argument("--episode-videos", default=600, type=int)
    parser.add_argument("--seed", default=0, type=int)
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
    print(
        f"wrote {args.out}/"
        + ", ".join(f"episodes_{n.removeprefix('episode_')}.parquet" for n in episodes.models)
        + f" ({args.episode_videos} videos each)"
    )


if __name__ == "__main__":
    main()
