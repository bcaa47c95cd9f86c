"""Screenshots of the MLflow UI and the HTML report for the README (after `make demo`).

    python scripts/ui_snapshot.py [--db mlflow.db] [--out docs/images]

Starts `mlflow ui` on 127.0.0.1 on the demo store, takes screenshots with headless Debian
Chromium (/usr/bin/chromium, offline flags) and stops the server.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from mlflow.tracking import MlflowClient

from evaluator.report.chromium import chart_view, run_chromium


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="mlflow.db")
    parser.add_argument("--experiment", default="poster-frames")
    parser.add_argument("--out", default="docs/images")
    args = parser.parse_args()
    db = Path(args.db).resolve()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name(args.experiment)
    if exp is None:
        sys.exit(f"no experiment {args.experiment!r} in {db}: run `make demo` first")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])
    # The newest finished evaluation (not a comparison, promotion or multirun parent).
    run = next(
        r for r in runs if r.info.status == "FINISHED" and "evaluator.kind" not in r.data.tags
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", f"sqlite:///{db}"]
        + ["--host", "127.0.0.1", "--port", str(port)],
        cwd=db.parent,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(180):
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        base = f"{url}/#/experiments/{exp.experiment_id}"
        chart_view(
            f"{base}/runs?compareRunsMode=CHART",
            search="recall_at_k",
            screenshot=out / "mlflow_chart_compare.png",
        )
        print(f"wrote {out / 'mlflow_chart_compare.png'}")
        shots = {
            "mlflow_match_table.png": (
                f"{base}/runs/{run.info.run_id}/artifacts/match_table.json",
                (1600, 1000),
            ),
        }
        run_chromium(f"{base}/runs", dump_dom=True)  # warm the server up
        for name, (page, window) in shots.items():
            run_chromium(page, screenshot=out / name, window=window)
            print(f"wrote {out / name}")
        report = Path(client.download_artifacts(run.info.run_id, "report.html", str(out.parent)))
        run_chromium(report.resolve().as_uri(), screenshot=out / "report.png", window=(1400, 2200))
        report.unlink()
        print(f"wrote {out / 'report.png'}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
