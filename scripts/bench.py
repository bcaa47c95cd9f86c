"""Benchmark the whole `video-eval` process: against a pandas script, against the machine's floor,
and as the catalog grows (time per video and peak memory per size).

Usage:
    python scripts/bench.py                       # the headline and the scaling table
    python scripts/bench.py --engine spark        # the same, engine=spark beside engine=local
    python scripts/bench.py scaling --engine connect --sizes 300000   # + Spark Connect
    python scripts/bench.py --sizes 20000,200000 --scale-dim 64 --headline-videos 20000
    python scripts/bench.py embed [...]           # image embedding throughput (bench_embed.py)
    python scripts/bench.py video [--old DIR]     # from video files, before/after (bench_video.py)
    python scripts/bench.py refusal               # how fast a bad path is refused

Every measured command is a fresh process, as a user runs it; its peak resident memory is
the largest sum of RSS over the process and all its descendants (sampled from /proc every
20 ms: for Spark, the JVM and its Python workers are counted). ``--engine connect`` adds
``engine=spark`` over Spark Connect: a server (scripts/connect_server.py, master local[2]) is
started for it, and its whole process tree (JVM, executors, Python workers) is counted with
the client's. ``engine=spark`` runs on a classic local[2] session. Data sets are generated once
into the cache folder as part files (rows shuffled within each part). Timings are printed,
never asserted; run on an otherwise idle machine.

Printed:
  1. headline (20k videos x 512-d by default): whole `video-eval` (sweep, CIs, plots, HTML
     report, MLflow sqlite store) vs the 20-line pandas script (recall only), their ratio,
     and the floor (parquet read of the needed columns + to-numpy);
  2. scaling (20k, 200k, 1M videos x 64-d by default, sizes that do not fit the disk skipped):
     seconds, microseconds per video, peak RSS, and the floor beside each size.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
EXPERT_FRAMES, PREDICTIONS = 6, 10
PART_VIDEOS = 50_000


# ----------------------------------------------------------------------------- measuring


def _tree_rss_bytes(root: int) -> int:
    """RSS of ``root`` and all its descendants (one scan of /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
            with open(f"/proc/{entry}/statm") as fh:
                pages = int(fh.read().split()[1])
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        pid = int(entry)
        children.setdefault(ppid, []).append(pid)
        rss[pid] = pages * page
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def run_measured(
    cmd: list[str], cwd: Path, env: dict[str, str] | None = None, also: tuple[int, ...] = ()
) -> tuple[float, float]:
    """(seconds, peak RSS MB of the process tree) of one command; exits on failure.

    ``also``: other processes (a Spark Connect server) whose trees count with the command's.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak = 0
    while proc.poll() is None:
        peak = max(peak, sum(_tree_rss_bytes(pid) for pid in (proc.pid, *also)))
        time.sleep(0.02)
    seconds = time.perf_counter() - t0
    _, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd[:4])} ... failed ({proc.returncode}):\n{err[-3000:]}")
    return seconds, peak / 2**20


# ----------------------------------------------------------------------------- data


def ensure_data(cache: Path, n_videos: int, dim: int) -> tuple[Path, Path]:
    """Part directories experts/ and predictions/ for n_videos videos (generated once).

    Each video has 6 expert frames and 10 ranked predictions; about half of the predictions
    lie near an expert frame with a close embedding, so recall@k rises over k like a model's.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = cache / f"parts_{n_videos}_{dim}"
    done = folder / "_COMPLETE"
    if done.exists():
        return folder / "experts", folder / "predictions"
    shutil.rmtree(folder, ignore_errors=True)
    need = n_videos * (EXPERT_FRAMES + PREDICTIONS) * dim * 4 * 1.15
    free = shutil.disk_usage(cache if cache.exists() else cache.parent).free
    if need > 0.8 * free:
        raise OSError(f"{n_videos} videos x {dim}-d need about {need / 2**30:.1f} GiB of disk")
    print(f"  generating {n_videos} videos x {dim}-d into {folder} (once) ...", flush=True)
    (folder / "experts").mkdir(parents=True)
    (folder / "predictions").mkdir()
    rng = np.random.default_rng(n_videos + dim)
    for part, start in enumerate(range(0, n_videos, PART_VIDEOS)):
        n = min(PART_VIDEOS, n_videos - start)
        ids = np.array([f"video_{v:08d}" for v in range(start, start + n)], dtype=object)
        e_t = rng.uniform(0, 1800, (n, EXPERT_FRAMES)).round(2)
        e_emb = rng.standard_normal((n, EXPERT_FRAMES, dim)).astype(np.float32)
        near = rng.random((n, PREDICTIONS)) < 0.5
        pick = rng.integers(0, EXPERT_FRAMES, (n, PREDICTIONS))
        base_t = np.take_along_axis(e_t, pick, axis=1)
        far_t = rng.uniform(0, 1800, (n, PREDICTIONS))
        p_t = np.where(near, base_t + rng.uniform(-4, 4, (n, PREDICTIONS)), far_t)
        p_t = np.clip(p_t, 0.0, None).round(2)
        base_e = np.take_along_axis(e_emb, pick[:, :, None], axis=1)
        noise = rng.standard_normal((n, PREDICTIONS, dim)).astype(np.float32)
        spread = rng.uniform(0.3, 1.6, (n, PREDICTIONS, 1)).astype(np.float32)
        p_emb = np.where(near[:, :, None], base_e + spread * noise, noise)

        def table(
            t: np.ndarray, emb: np.ndarray, rank: bool, seed: int, ids: np.ndarray = ids
        ) -> pa.Table:
            rows = t.size
            cols = {
                "video_id": pa.array(np.repeat(ids, t.shape[1])),
                "timestamp": pa.array(t.reshape(-1)),
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), dim),
            }
            if rank:
                cols["rank"] = pa.array(np.tile(np.arange(1, t.shape[1] + 1), t.shape[0]))
            order = np.random.default_rng(seed).permutation(rows)
            return pa.table(cols).take(pa.array(order))

        name = f"part-{part:05d}.parquet"
        pq.write_table(table(e_t, e_emb, False, part), folder / "experts" / name)
        pq.write_table(table(p_t, p_emb, True, part + 7), folder / "predictions" / name)
    done.touch()
    return folder / "experts", folder / "predictions"


# ----------------------------------------------------------------------------- the commands

PANDAS_SCRIPT = """
import sys, numpy as np, pandas as pd
experts = pd.read_parquet(sys.argv[1]).drop_duplicates(subset=["video_id", "timestamp"])
preds = pd.read_parquet(sys.argv[2])
counts = experts.groupby("video_id").size()
eligible = counts[counts >= 5].index
experts = experts[experts.video_id.isin(eligible)]
preds = preds.sort_values(["video_id", "rank"])
preds = preds[preds.groupby("video_id").cumcount() < 10]
preds = preds.assign(pos=preds.groupby("video_id").cumcount() + 1)
pairs = preds.merge(experts, on="video_id", suffixes=("_m", "_e"))
a = np.stack(pairs.embedding_m.to_numpy())
b = np.stack(pairs.embedding_e.to_numpy())
cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
pairs["hit"] = ((pairs.timestamp_m - pairs.timestamp_e).abs() <= 3.0) & (cos >= 0.5)
first = pairs[pairs.hit].groupby("video_id").pos.min().reindex(eligible).fillna(0)
print([float(((first >= 1) & (first <= k)).mean()) for k in range(1, 11)])
"""

FLOOR_SCRIPT = """
import sys, glob, pyarrow.parquet as pq
batch_bytes, buffer_bytes, max_rows = map(int, sys.argv[3:6])
for path, cols in ((sys.argv[1], ["video_id", "timestamp", "embedding"]),
                   (sys.argv[2], ["video_id", "timestamp", "rank", "embedding"])):
    files = sorted(glob.glob(path + "/part-*.parquet"))
    if not files:
        sys.exit(f"floor: no part files in {path}")
    for name in files:
        f = pq.ParquetFile(name, pre_buffer=False, buffer_size=buffer_bytes)
        if f.metadata.num_row_groups == 0:
            continue
        group = f.metadata.row_group(0)
        # The engine's batches: about batch_bytes of data (the vectors dominate a row).
        per_row = max(1, group.total_byte_size // max(1, group.num_rows))
        rows = max(1, min(max_rows, batch_bytes // per_row))
        for batch in f.iter_batches(batch_size=rows, columns=cols):
            for col_name in cols:
                col = batch.column(col_name)
                if col_name == "embedding":
                    col.flatten().to_numpy()
                elif col_name == "video_id":
                    col.dictionary_encode()
                else:
                    col.to_numpy()
"""


def _engine_overrides(engine: str, work: Path) -> tuple[list[str], tuple[int, ...]]:
    """video-eval's engine overrides, and the server pids to count (engine ``connect``)."""
    if engine == "spark":
        return ["engine=spark", "engine.master='local[2]'"], ()
    if engine == "connect":
        server = _connect_server(work)
        return ["engine=spark", f"engine.master={server.url}"], (server.pid,)
    return [f"engine={engine}"], ()


_SERVERS: dict[Path, object] = {}
_STOPS: list[Callable[[], None]] = []  # run before the work folder (the pid files) goes


def _connect_server(work: Path) -> Any:
    """One Spark Connect server for the whole benchmark (stopped at its end)."""
    if work not in _SERVERS:
        spec = importlib.util.spec_from_file_location("connect_server", HERE / "connect_server.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        # The heap a local session of video-eval gets (spark.driver.memory=4g); Spark's 1g
        # default dies scoring 300k videos.
        server = module.start(work / "connect-server", driver_memory="4g")
        _SERVERS[work] = server
        _STOPS.append(lambda: module.stop(server.folder))
        idle = _tree_rss_bytes(server.pid) / 2**20
        print(f"  (Spark Connect server {server.url}, local[2], 4g heap: {idle:.0f} MB idle)")
    return _SERVERS[work]


def video_eval(
    experts: Path, preds: Path, work: Path, engine: str, extra: list[str]
) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    tag = f"{engine}_{experts.parent.name}"
    shutil.rmtree(work / tag, ignore_errors=True)  # a run writes into a folder of its own
    overrides, also = _engine_overrides(engine, work)
    cmd = [
        str(Path(sys.executable).with_name("video-eval")),
        f"data.experts={experts}",
        f"data.predictions={preds}",
        f"mlflow.tracking_uri=sqlite:///{work / f'{tag}.db'}",
        *overrides,
        f"hydra.run.dir={work / tag}",
        *extra,
    ]
    return run_measured(cmd, work, env, also)


def python_script(source: str, *args: Path | int, work: Path) -> tuple[float, float]:
    return run_measured([sys.executable, "-c", source, *map(str, args)], work)


def floor(experts: Path, preds: Path, work: Path) -> tuple[float, float]:
    """The floor: the needed columns read as the engine reads them, then to numpy."""
    from evaluator.io.partition import BATCH_ROWS, READ_BATCH_BYTES, READ_BUFFER_BYTES

    return python_script(
        FLOOR_SCRIPT,
        experts,
        preds,
        READ_BATCH_BYTES,
        READ_BUFFER_BYTES,
        BATCH_ROWS,
        work=work,
    )


# ----------------------------------------------------------------------------- reports


def headline(args: argparse.Namespace, work: Path) -> None:
    experts, preds = ensure_data(args.cache, args.headline_videos, args.headline_dim)
    n = args.headline_videos
    print(f"\n1. whole process, {n} videos x {args.headline_dim}-d ({os.cpu_count()} cores)")
    floor_s, floor_mb = floor(experts, preds, work)
    pandas_s, pandas_mb = python_script(PANDAS_SCRIPT, experts, preds, work=work)
    rows = [("floor: parquet read + to-numpy", floor_s, floor_mb)]
    rows.append(("pandas script (recall only)", pandas_s, pandas_mb))
    for engine in args.engines:
        # The first run against a new store migrates it; time the run a user repeats.
        video_eval(experts, preds, work, engine, [])
        s, mb = video_eval(experts, preds, work, engine, [])
        rows.append((f"video-eval engine={engine} (everything)", s, mb))
    print(f"  {'command':<44s} {'seconds':>8s} {'peak RSS':>10s} {'vs pandas':>10s}")
    for label, s, mb in rows:
        print(f"  {label:<44s} {s:8.2f} {mb:7.0f} MB {pandas_s / s:9.2f}x")


def scaling(args: argparse.Namespace, work: Path) -> None:
    print(f"\n2. scaling, {args.scale_dim}-d, engine.memory_budget_mb={args.budget_mb}")
    head = f"  {'videos':>9s} {'engine':<7s} {'seconds':>8s} {'us/video':>9s} {'peak RSS':>10s}"
    print(f"{head} {'floor s':>8s} {'floor us/video':>15s}")
    for n in args.sizes:
        try:
            experts, preds = ensure_data(args.cache, n, args.scale_dim)
        except OSError as exc:
            print(f"  {n:>9d} skipped: {exc}")
            continue
        floor_s, _ = floor(experts, preds, work)
        for engine in args.engines:
            extra = [f"engine.memory_budget_mb={args.budget_mb}"] if engine == "local" else []
            s, mb = video_eval(experts, preds, work, engine, extra)
            print(
                f"  {n:>9d} {engine:<7s} {s:8.2f} {s / n * 1e6:9.1f} {mb:7.0f} MB "
                f"{floor_s:8.2f} {floor_s / n * 1e6:15.1f}",
                flush=True,
            )


def refusal(work: Path) -> None:
    """How long `video-eval` takes to refuse a path that does not exist."""
    exe = str(Path(sys.executable).with_name("video-eval"))
    cmd = [exe, f"data.experts={work}/missing.parquet", f"data.predictions={work}/none.parquet"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    message = proc.stderr.strip()[:160]
    print(f"  bad path refused in {seconds:.2f} s (exit {proc.returncode}): {message}")
    t0 = time.perf_counter()
    subprocess.run([exe, "--help"], cwd=work, capture_output=True, text=True)
    print(f"  video-eval --help in {time.perf_counter() - t0:.2f} s")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "embed":
        os.execv(sys.executable, [sys.executable, str(HERE / "bench_embed.py"), *sys.argv[2:]])
    if len(sys.argv) > 1 and sys.argv[1] == "video":
        os.execv(sys.executable, [sys.executable, str(HERE / "bench_video.py"), *sys.argv[2:]])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "what", nargs="?", choices=["all", "headline", "scaling", "refusal"], default="all"
    )
    parser.add_argument(
        "--engine",
        choices=["local", "spark", "connect"],
        default="local",
        help="spark: run engine=spark (classic local[2]) beside engine=local; connect: and over "
        "a Spark Connect server too",
    )
    parser.add_argument(
        "--only", choices=["local", "spark", "connect"], default=None, help="run this engine only"
    )
    parser.add_argument("--headline-videos", type=int, default=20_000)
    parser.add_argument("--headline-dim", type=int, default=512)
    parser.add_argument(
        "--sizes",
        default="20000,200000,1000000",
        help="comma-separated catalog sizes for the scaling table",
    )
    parser.add_argument("--scale-dim", type=int, default=64)
    parser.add_argument("--budget-mb", type=int, default=1024)
    parser.add_argument("--cache", type=Path, default=Path(".bench_cache"))
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    args.engines = {"local": ["local"], "spark": ["local", "spark"]}.get(
        args.engine, ["local", "spark", "connect"]
    )
    if args.only:
        args.engines = [args.only]
    args.cache = args.cache.resolve()
    args.cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.cache) as tmp:
        work = Path(tmp)
        if args.what in ("all", "refusal"):
            print("\n0. quick answers")
            refusal(work)
        if args.what in ("all", "headline"):
            headline(args, work)
        try:
            if args.what in ("all", "scaling"):
                scaling(args, work)
        finally:
            for stop in _STOPS:
                stop()


if __name__ == "__main__":
    main()
