"""From video files to a verdict: decoding, the frames embedded and the end-to-end rate.

    python scripts/bench.py video [--videos 4] [--old CHECKOUT] [--model mobilenet_v2_deepsort]

Writes episode-length videos (20-45 min, a keyframe every --gop-s seconds, tiny 64x36 frames at
a low frame rate so that they are written in seconds) with 6-8 expert frames and 10 model frames
each, then runs `video-eval` on them (embedding cache off) as a fresh process: with this
checkout, and with the code of --old (a checkout of an earlier commit) when given. Printed per
run: frames decoded per frame used, frames embedded against the frames needed (those the match
rule or the sweep can look at), the embedding stage's seconds and needed frames per second
(hashing + decoding + the model), and the whole process's seconds; plus the minimum that
nearest-frame decoding needs (per GOP holding a needed frame: its keyframe to its last needed
frame), computed from the packets' keyframe flags without decoding. Timings are printed, never
asserted.

The counts of a run come from a small launcher: it wraps ``av.open`` (frames decoded in the
calling process) and the table embedder (the embedding stage's wall time), then runs the
command line; decoding in worker processes is read from ``summary.json``
(``n_frames_decoded``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

FPS, WIDTH, HEIGHT = 5, 64, 36
TOLERANCE_S, WINDOW_S = 3.0, 10.0  # matching.time_tolerance_s and the sweep's largest

LAUNCHER = r"""
import json, sys, time
old = sys.argv[1]
if old:
    sys.meta_path = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()
                     and "editable" not in type(f).__name__.lower()]
    sys.path.insert(0, old)
import av
counts = {"decoded": 0, "stage_s": 0.0}
real_open = av.open

class Counting:
    def __init__(self, c): self._c = c
    def __getattr__(self, name): return getattr(self._c, name)
    def __enter__(self): self._c.__enter__(); return self
    def __exit__(self, *a): return self._c.__exit__(*a)
    def decode(self, *a, **k):
        for frame in self._c.decode(*a, **k):
            counts["decoded"] += 1
            yield frame

av.open = lambda *a, **k: Counting(real_open(*a, **k))
import evaluator.io.images as images
def timed(fn):
    def run(*a, **k):
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            counts["stage_s"] += time.perf_counter() - t0
    return run
for name in ("__call__", "embed_tables"):
    if hasattr(images.TableEmbedder, name):
        setattr(images.TableEmbedder, name, timed(getattr(images.TableEmbedder, name)))
from evaluator.cli import main
sys.argv = ["video-eval", *sys.argv[3:]]
try:
    main()
finally:
    with open(OUT, "w") as fh:
        json.dump(counts, fh)
"""


def write_episode(path: Path, seconds: float, gop_s: float, seed: int) -> None:
    """A smooth moving gradient (cheap to encode), a keyframe exactly every ``gop_s``."""
    import av

    rng = np.random.default_rng(seed)
    x = np.linspace(0, 255, WIDTH, dtype=np.float32)[None, :, None]
    base = np.broadcast_to(x, (HEIGHT, WIDTH, 3)).astype(np.uint8)
    tint = rng.integers(0, 255, 3, dtype=np.uint8)
    gop = round(gop_s * FPS)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.options = {
            "keyint_min": str(gop),
            "sc_threshold": "0",
            "preset": "ultrafast",
            "bf": "0",
        }
        for i in range(int(seconds * FPS)):
            image = np.roll(base, i % WIDTH, axis=1) ^ tint
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_case(folder: Path, n_videos: int, gop_s: float, seed: int) -> tuple[Path, Path]:
    """Videos and the two tables: 6-8 expert frames and 10 ranked model frames per video, 3 of
    them near an expert frame, the rest anywhere."""
    rng = np.random.default_rng(seed)
    experts, preds = [], []
    for v in range(n_videos):
        seconds = float(rng.uniform(20, 45)) * 60
        name = f"episode{v}.mp4"
        write_episode(folder / name, seconds, gop_s, seed + v)
        ts = np.sort(rng.uniform(0, seconds - 1, int(rng.integers(6, 9))))
        experts += [(f"e{v}", round(float(t), 2), name) for t in ts]
        near = rng.choice(ts, 3, replace=False) + rng.uniform(-5, 5, 3)
        far = rng.uniform(0, seconds - 1, 7)
        times = np.clip(np.r_[near, far], 0, seconds - 1)
        for rank, t in enumerate(rng.permutation(times), start=1):
            preds.append((f"e{v}", round(float(t), 2), rank, name))
    e = folder / "experts.csv"
    p = folder / "predictions.csv"
    pd.DataFrame(experts, columns=["video_id", "timestamp", "video_path"]).to_csv(e, index=False)
    pd.DataFrame(preds, columns=["video_id", "timestamp", "rank", "video_path"]).to_csv(
        p, index=False
    )
    return e, p


def needed_and_minimum(folder: Path, e: Path, p: Path, k_max: int, min_expert: int):
    """(distinct frames needed, the decoding minimum) from the tables and the packets."""
    import av

    from evaluator.core.candidates import frames_to_embed
    from evaluator.core.frames import Frames
    from evaluator.embed.decode import frame_table, minimum_decodes

    ex, pr = pd.read_csv(e), pd.read_csv(p)
    codes, _ = pd.factorize(pd.concat([ex.video_id, pr.video_id]).to_numpy())
    n_e = len(ex)
    content = pd.factorize(ex.video_path + "@" + ex.timestamp.astype(str))[0]
    need = frames_to_embed(
        Frames(codes[:n_e], ex.timestamp.to_numpy(np.float64), row_key=None),
        Frames(codes[n_e:], pr.timestamp.to_numpy(np.float64), rank=pr["rank"].to_numpy()),
        int(codes.max()) + 1,
        expert_content=content,
        k_max=k_max,
        min_expert_frames=min_expert,
        window_s=WINDOW_S,
    )
    rows = pd.concat([ex[need.experts], pr[need.model]])[["video_path", "timestamp"]]
    rows = rows.drop_duplicates()
    minimum = 0
    for name, group in rows.groupby("video_path"):
        with av.open(str(folder / name)) as c:
            table = frame_table(c, c.streams.video[0], scan=True)
        minimum += minimum_decodes(table, group.timestamp.tolist())
    return len(rows), minimum


def run(label: str, code: str, folder: Path, e: Path, p: Path, model: str, workers: str | None):
    out = folder / f"{label}.json"
    args = [
        f"data.experts={e}",
        f"data.predictions={p}",
        f"embedder={model}",
        "embedder.cache_dir=off",
        "embedder.progress=false",
        f"matching.time_tolerance_s={TOLERANCE_S}",
        "metrics.min_expert_frames=5",
        "metrics.bootstrap.n_resamples=0",
        "plots=false",
        "report.html=false",
        f"mlflow.tracking_uri=sqlite:///{folder / (label + '.db')}",
        f"hydra.run.dir={folder / label}",
    ]
    if workers is not None:
        args.append(f"embedder.num_workers={workers}")
    # Each repeat writes into a fresh folder: a run refuses a folder holding another run's files.
    shutil.rmtree(folder / label, ignore_errors=True)
    source = LAUNCHER.replace("OUT", repr(str(out)))
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PYTHONPATH")}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", source, code, "-", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{label} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    counts = json.loads(out.read_text())
    summary = json.loads((folder / label / "summary.json").read_text())
    m = summary["metrics"]
    # This checkout counts decoding (in its worker processes too); older code is counted here.
    decoded = int(m["n_frames_decoded"]) if "n_frames_decoded" in m else counts["decoded"]
    return {
        "embedded": int(m["n_embeddings_computed"]),
        "decoded": decoded,
        "stage_s": counts["stage_s"],
        "wall_s": wall,
        "recall": m["recall_at_10"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--gop-s", type=float, default=4.0, help="seconds between keyframes")
    parser.add_argument("--old", default="", help="a checkout of the code to compare against")
    parser.add_argument("--model", default="mobilenet_v2_deepsort")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1, help="runs per checkout; best kept")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        e, p = make_case(folder, args.videos, args.gop_s, args.seed)
        size = sum(f.stat().st_size for f in folder.glob("*.mp4")) / 2**20
        print(
            f"{args.videos} videos of 20-45 min ({WIDTH}x{HEIGHT}, {FPS} fps, a keyframe every "
            f"{args.gop_s:g} s, {size:.0f} MiB) written in {time.perf_counter() - t0:.1f} s; "
            f"{os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f}); "
            f"embedder={args.model}, cache off; best of {args.repeat}"
        )
        needed, minimum = needed_and_minimum(folder, e, p, k_max=10, min_expert=5)
        print(f"frames needed: {needed}; decoding minimum (nearest frames): {minimum} frames")
        runs = []
        if args.old:
            runs.append(("before", str(Path(args.old).resolve()), None))
        runs.append(("after", "", None))
        results = {}
        head = (
            f"  {'run':<8s} {'embedded':>9s} {'needed':>7s} {'decoded':>8s} {'dec/used':>9s} "
            f"{'x minimum':>10s} {'stage s':>8s} {'needed/s':>9s} {'process s':>10s}"
        )
        print(head)
        for label, code, workers in runs:
            tries = [
                run(label, code, folder, e, p, args.model, workers) for _ in range(args.repeat)
            ]
            r = min(tries, key=lambda x: x["stage_s"])
            r["wall_s"] = min(x["wall_s"] for x in tries)
            results[label] = r
            print(
                f"  {label:<8s} {r['embedded']:9d} {needed:7d} {r['decoded']:8d} "
                f"{r['decoded'] / needed:9.1f} {r['decoded'] / max(minimum, 1):10.2f} "
                f"{r['stage_s']:8.2f} {needed / r['stage_s']:9.1f} {r['wall_s']:10.2f}",
                flush=True,
            )
        if "before" in results:
            b, a = results["before"], results["after"]
            same = "same" if b["recall"] == a["recall"] else "DIFFERENT"
            print(
                f"after vs before: embedding stage {b['stage_s'] / a['stage_s']:.2f}x faster, "
                f"whole process {b['wall_s'] / a['wall_s']:.2f}x; recall@10 {same} "
                f"({a['recall']:.3f})"
            )


if __name__ == "__main__":
    main()
