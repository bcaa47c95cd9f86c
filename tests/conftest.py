"""Shared fixtures: small demo sets on disk, composed configs, a real MLflow server."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hydra import compose, initialize_config_module
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from evaluator.config import register_configs
from evaluator.demo.poster_data import make_demo_set

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 120-video demo set: experts.parquet, baseline.parquet (rank), candidate.parquet (score)."""
    out = tmp_path_factory.mktemp("demo")
    demo = make_demo_set(120, dim=64, seed=3)
    paths = {"experts": out / "experts.parquet"}
    demo.experts.to_parquet(paths["experts"], index=False)
    for name, table in demo.models.items():
        paths[name] = out / f"{name}.parquet"
        table.to_parquet(paths[name], index=False)
    return paths


def load_script(name: str) -> ModuleType:
    """scripts/<name>.py imported as a module (the scripts folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it is being run
    spec.loader.exec_module(module)
    return module


def compose_config(overrides: list[str], config_name: str = "evaluate") -> DictConfig:
    """The config `video-eval` would run with these command-line overrides."""
    register_configs()
    with initialize_config_module(config_module="evaluator.conf", version_base=None):
        return compose(config_name=config_name, overrides=overrides)


def run_cli(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, module: str = "evaluator"
) -> subprocess.CompletedProcess:
    """Run ``python -m <module> ARGS`` in ``cwd`` as a user would (a real process)."""
    full_env = dict(os.environ)
    full_env.pop("MLFLOW_TRACKING_URI", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


# The episode demo's two models as registered versions: (version, model key).
EPISODE_DEMO_VERSIONS = (("1", "episode_baseline"), ("2", "episode_candidate"))


def episode_demo_runs(demo: Any, tmp_path: Path, uri: str, *overrides: str) -> dict[str, Any]:
    """`run_episode` on each of the episode demo's models (written to tmp_path/<key>.parquet,
    outputs in tmp_path/<key>), recorded in ``uri``; the outcomes by version.

    ``{version}`` in an override stands for the model's version ("1", "2").
    """
    from evaluator.tasks.episode import run_episode

    outcomes = {}
    for version, key in EPISODE_DEMO_VERSIONS:
        path = tmp_path / f"{key}.parquet"
        demo.models[key].to_parquet(path, index=False)
        extra = [o.format(version=version) for o in overrides]
        cfg = compose_config(
            ["task=episode", f"data.episodes={path}", f"mlflow.tracking_uri={uri}", *extra]
        )
        outcomes[version] = run_episode(cfg, tmp_path / key)
    return outcomes


def artifact_paths(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    """Every artifact file of the run below ``path`` (recursively), as run-relative paths."""
    out = set()
    for item in client.list_artifacts(run_id, path):
        out |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return out


def sqlite_run(db: Path, run_id: str) -> tuple[MlflowClient, Run]:
    """A client of the sqlite store ``db`` and the run ``run_id`` read back from it."""
    client = MlflowClient(f"sqlite:///{db}")
    return client, client.get_run(run_id)


def record_failing_dataset(tmp_path: Path, experiment: str, error: BaseException) -> Run:
    """`record_run` into a sqlite store in ``tmp_path`` with a dataset input whose logging
    raises ``error`` (after the metrics); the error must come out as it is. Returns the
    experiment's one run."""
    from evaluator.tracking.mlflow_run import RunRecord, record_run

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    class FailingDataset:
        def _to_mlflow_entity(self) -> None:
            raise error

    with pytest.raises(type(error)):
        record_run(
            tracking_uri=uri,
            experiment=experiment,
            run_name="r",
            record=RunRecord(metrics={"m": 1.0}, dataset=FailingDataset()),
            artifact_location=(tmp_path / "art").as_uri(),
        )
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def mlflow_process(command: str, db: Path, root: Path, extra: list[str]) -> Iterator[str]:
    """Run ``mlflow server`` / ``mlflow ui`` on 127.0.0.1 (free port) until /health answers;
    yield its URL; stop it by process group on exit."""
    port = _free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log_path = root / f"{command}.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            command,
            "--backend-store-uri",
            f"sqlite:///{db}",
            *extra,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                log.flush()
                raise RuntimeError(
                    f"mlflow {command} did not start: {log_path.read_text()[-3000:]}"
                )
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1 (sqlite backend, local artifacts); yields its URL."""
    root = tmp_path_factory.mktemp("mlflow-server")
    extra = ["--artifacts-destination", str(root / "artifacts"), "--workers", "1"]
    with mlflow_process("server", root / "mlflow.db", root, extra) as url:
        yield url
