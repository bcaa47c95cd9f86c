"""Write a few synthetic demo frames and a 3 s demo video (see evaluator.demo.images).

Usage: python scripts/demo_images.py [OUT_DIR]   (default demo_data/frames)
"""

from __future__ import annotations

import sys
from pathlib import Path

from evaluator.demo.images import render_frame, write_demo_video


def main(out_dir: str = "demo_data/frames") -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for scene in range(4):
        for t in (0.0, 1.0, 2.0):
            render_frame(scene, t).save(out / f"scene{scene}_t{t:.0f}.png")
    scenes = write_demo_video(out / "demo.mp4")
    print(f"wrote 12 frames and demo.mp4 ({len(scenes)} frames) to {out}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
