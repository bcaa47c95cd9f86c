"""Benchmark: load, core evaluation, sweep, bootstrap, MLflow logging and the whole command.

Usage:
    python scripts/bench.py [--videos 20000] [--cache .bench_cache] [--skip-pandas]
    python scripts/bench.py embed [...]     (image embedding throughput: scripts/bench_embed.py)

The data set (N videos, 512-d embeddings, parquet) is generated once into the cache folder.
Each step reports wall time and peak resident memory above its start (sampled from /proc);
the same data also goes through a straightforward pandas implementation (merge experts and
predictions on video_id, every pair's dt and cosine, group by video) for the ratio. Timings
are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(label: str, fn: Callable[[], Any], rows: list[tuple[str, float, float]]) -> Any:
    """Run fn, record (label, seconds, peak resident memory above the start, MB).

    Memory is sampled from /proc every 5 ms by a thread (no tracing overhead on the timing).
    """
    start = _rss_mb()
    peak = [start]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], _rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    extra = max(peak[0], _rss_mb()) - start
    rows.append((label, seconds, extra))
    print(f"  {label:<44s} {seconds:8.3f} s   +{extra:7.0f} MB resident", flush=True)
    return out


def ensure_data(cache: Path, n_videos: int, dim: int) -> tuple[Path, Path]:
    """Generate the benchmark set once (scene-structured demo data at scale)."""
    from evaluator.demo.poster_data import make_demo_set

    folder = cache / f"poster_{n_videos}_{dim}"
    experts, preds = folder / "experts.parquet", folder / "predictions.parquet"
    if not (experts.exists() and preds.exists()):
        print(f"generating {n_videos} videos ({dim}-d) into {folder} (once) ...", flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        demo = make_demo_set(n_videos, dim=dim, seed=1, qualities={"model": 0.3})
        demo.experts.to_parquet(experts, index=False)
        demo.models["model"].to_parquet(preds, index=False)
    return experts, preds


def pandas_baseline(
    experts: pd.DataFrame,
    preds: pd.DataFrame,
    tau: float,
    theta: float,
    min_expert: int,
    k_max: int,
) -> np.ndarray:
    """recall@1..k the straightforward way: merge on video_id, all pairs, group by video."""
    experts = experts.drop_duplicates(subset=["video_id", "timestamp"])
    counts = experts.groupby("video_id").size()
    eligible = counts[counts >= min_expert].index
    experts = experts[experts.video_id.isin(eligible)]
    preds = preds.sort_values(["video_id", "rank"])
    preds = preds[preds.groupby("video_id").cumcount() < k_max]
    preds = preds.assign(pos=preds.groupby("video_id").cumcount() + 1)
    pairs = preds.merge(experts, on="video_id", suffixes=("_m", "_e"))
    a = np.stack(pairs.embedding_m.to_numpy())
    b = np.stack(pairs.embedding_e.to_numpy())
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    pairs["hit"] = ((pairs.timestamp_m - pairs.timestamp_e).abs() <= tau) & (cos >= theta)
    first = pairs[pairs.hit].groupby("video_id").pos.min()
    first = first.reindex(eligible).fillna(0).astype(int)
    return np.array([((first >= 1) & (first <= k)).mean() for k in range(1, k_max + 1)])


def bench_poster(args: argparse.Namespace) -> None:
    from omegaconf import OmegaConf

    from evaluator.core.bootstrap import bootstrap_mean_ci
    from evaluator.core.poster import (
        DEFAULT_SWEEP_MIN_COSINES,
        DEFAULT_SWEEP_TIME_TOLERANCES_S,
        PosterSettings,
        evaluate_poster,
    )
    from evaluator.io.poster import load_poster_inputs

    experts_path, preds_path = ensure_data(args.cache, args.videos, args.dim)
    rows: list[tuple[str, float, float]] = []
    print(
        f"\n{args.videos} videos, {args.dim}-d; {os.cpu_count()} cores; "
        f"files {experts_path.stat().st_size / 2**20:.0f} MB + "
        f"{preds_path.stat().st_size / 2**20:.0f} MB"
    )
    inputs = measure(
        "load + validate (both files)",
        lambda: load_poster_inputs(experts_path, preds_path, need_embeddings=True),
        rows,
    )
    plain = PosterSettings()
    swept = PosterSettings(
        sweep_time_tolerances_s=DEFAULT_SWEEP_TIME_TOLERANCES_S,
        sweep_min_cosines=DEFAULT_SWEEP_MIN_COSINES,
    )
    run = lambda s: evaluate_poster(inputs.experts, inputs.model, inputs.n_videos, s)  # noqa: E731
    measure("core evaluation (no sweep)", lambda: run(plain), rows)
    result = measure("core evaluation + default sweep (11 x 21)", lambda: run(swept), rows)
    hits = result.hits.astype(np.float64)
    measure(
        "bootstrap, 1000 resamples, recall@1..10",
        lambda: bootstrap_mean_ci(hits, n_resamples=1000, confidence=0.95, seed=0),
        rows,
    )
    measure(
        "bootstrap, 1000 resamples, recall@1/5/10",
        lambda: bootstrap_mean_ci(hits[:, [0, 4, 9]], n_resamples=1000, confidence=0.95, seed=0),
        rows,
    )

    with tempfile.TemporaryDirectory() as tmp:
        from hydra import compose, initialize_config_module

        from evaluator.config import register_configs
        from evaluator.tasks.poster import run_poster

        register_configs()
        with initialize_config_module(config_module="evaluator.conf", version_base=None):
            cfg = compose(
                config_name="evaluate",
                overrides=[
                    f"data.experts={experts_path}",
                    f"data.predictions={preds_path}",
                    f"mlflow.tracking_uri=sqlite:///{tmp}/mlflow.db",
                ],
            )
        OmegaConf.resolve(cfg)
        measure(
            "run_poster, local outputs only (no MLflow)",
            lambda: run_poster(cfg, Path(tmp) / "local", track=False),
            rows,
        )
        # Warm the store (table creation) so the next line times logging alone.
        run_poster(cfg, Path(tmp) / "warm", track=True)
        measure(
            "run_poster with MLflow logging (sqlite)",
            lambda: run_poster(cfg, Path(tmp) / "tracked", track=True),
            rows,
        )

        t0 = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "evaluator",
                f"data.experts={experts_path}",
                f"data.predictions={preds_path}",
                f"mlflow.tracking_uri=sqlite:///{tmp}/mlflow.db",
                f"hydra.run.dir={tmp}/cli",
            ],
            capture_output=True,
            text=True,
        )
        whole = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stderr[-2000:])
        rows.append(("whole `video-eval` process", whole, float("nan")))
        print(f"  {'whole `video-eval` process (fresh python)':<44s} {whole:8.3f} s")

    core = next(r[1] for r in rows if r[0] == "core evaluation (no sweep)")
    core_sweep = next(r[1] for r in rows if r[0].startswith("core evaluation + default"))
    print(f"\n  sweep adds {core_sweep - core:+.3f} s")
    if not args.skip_pandas:
        e_df = pd.read_parquet(experts_path)
        p_df = pd.read_parquet(preds_path)
        ref = measure(
            "pandas baseline (merge + all pairs + groupby)",
            lambda: pandas_baseline(e_df, p_df, 3.0, 0.5, 5, 10),
            rows,
        )
        t_pd = rows[-1][1]
        same = np.allclose(ref, result.recall_curve)
        print(
            f"  core vs pandas: {t_pd / core:.1f}x faster on the core step "
            f"(recall@k identical: {same})"
        )
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  process max RSS {maxrss:.0f} MB")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "embed":
        here = Path(__file__).resolve().parent
        os.execv(sys.executable, [sys.executable, str(here / "bench_embed.py"), *sys.argv[2:]])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--cache", type=Path, default=Path(".bench_cache"))
    parser.add_argument("--skip-pandas", action="store_true")
    args = parser.parse_args()
    bench_poster(args)


if __name__ == "__main__":
    main()
