"""A Spark Connect server on this machine, from the installed pyspark (tests, benchmarks, trying
``engine.master=sc://...`` without a cluster).

Usage:
    python scripts/connect_server.py start --port 15002 --dir /tmp/connect   # prints sc://...
    python scripts/connect_server.py stop --dir /tmp/connect

The server is pyspark's own ``sbin/start-connect-server.sh`` with master ``local[2]``, bound to
127.0.0.1; its log and pid files live under ``--dir``. Its Python workers run this interpreter
(``PYSPARK_PYTHON``), so they import the evaluator installed here.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

START_TIMEOUT_S = 120.0


def pyspark_home() -> Path:
    """The installed pyspark package folder (it holds ``sbin/`` and ``jars/``)."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def free_port() -> int:
    """A TCP port nothing listens on now (127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


class ConnectServer(NamedTuple):
    """A started server: its ``sc://`` URL, the JVM's pid and its folder (logs, pid file)."""

    url: str
    port: int
    pid: int
    folder: Path


def start(
    folder: Path,
    port: int | None = None,
    *,
    master: str = "local[2]",
    driver_memory: str | None = None,
) -> ConnectServer:
    """Start the server and wait until its port accepts connections.

    ``driver_memory``: the server JVM's heap (which holds the local executors too); Spark's
    default is 1g.

    Raises:
        RuntimeError: the server did not listen within START_TIMEOUT_S (its log is quoted).
    """
    home = pyspark_home()
    port = port or free_port()
    logs, pids = folder / "log", folder / "pid"
    logs.mkdir(parents=True, exist_ok=True)
    pids.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOG_DIR": str(logs),
        "SPARK_PID_DIR": str(pids),
        "SPARK_IDENT_STRING": f"video-evaluator-{port}",
    }
    subprocess.run(
        [
            str(home / "sbin" / "start-connect-server.sh"),
            "--master",
            master,
            *(["--driver-memory", driver_memory] if driver_memory else []),
            "--conf",
            "spark.connect.grpc.binding.address=127.0.0.1",
            "--conf",
            f"spark.connect.grpc.binding.port={port}",
            "--conf",
            "spark.ui.enabled=false",
            # Small test and benchmark tables: few shuffle partitions keep the per-task cost low.
            "--conf",
            "spark.sql.shuffle.partitions=4",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not listening(port):
        if time.monotonic() > deadline:
            log = "\n".join(p.read_text()[-2000:] for p in logs.glob("*.out"))
            stop(folder)
            raise RuntimeError(f"the Spark Connect server did not listen on {port}:\n{log}")
        time.sleep(0.5)
    return ConnectServer(f"sc://127.0.0.1:{port}", port, _pid(folder), folder)


def _pid(folder: Path) -> int:
    files = sorted((folder / "pid").glob("*.pid"))
    return int(files[0].read_text().strip()) if files else 0


def stop(folder: Path, timeout_s: float = 30.0) -> None:
    """Stop the server started under ``folder`` by its pid (TERM, then KILL)."""
    pid = _pid(folder)
    if pid <= 0:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--dir", type=Path, required=True, help="log and pid folder")
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    parser.add_argument("--driver-memory", default=None, help="the JVM's heap, e.g. 4g")
    args = parser.parse_args()
    if args.action == "start":
        server = start(args.dir.resolve(), args.port, driver_memory=args.driver_memory)
        print(server.url)
    else:
        stop(args.dir.resolve())


if __name__ == "__main__":
    main()
