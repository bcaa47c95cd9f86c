"""Faults while the streaming engine partitions its inputs into temporary buckets on disk.

A real `video-eval` process is stopped with SIGTERM or Ctrl-C (SIGINT) while its buckets are
being written; a full disk is injected into the bucket writer. Afterwards the temporary folder
is empty, the message is one clear line, and no MLflow run is left RUNNING.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from evaluator.engines.streaming import stream_poster
from evaluator.errors import InputError
from evaluator.io import partition
from evaluator.io.sources import resolve_source
from tests.engines.streamkit import SETTINGS


def _big_parts(root: Path, n_videos: int, dim: int = 16, n_parts: int = 4) -> tuple[Path, Path]:
    """n_videos videos (6 expert frames, 10 predictions each), rows shuffled over part files."""
    rng = np.random.default_rng(0)

    def write(name: str, per_video: int, ranked: bool) -> Path:
        n = n_videos * per_video
        vids = np.repeat(np.arange(n_videos), per_video)
        cols = {
            "video_id": pa.array([f"v{v:06d}" for v in vids]),
            "timestamp": pa.array(rng.integers(0, 600, n).astype(np.float64)),
            "embedding": pa.FixedSizeListArray.from_arrays(
                pa.array(rng.standard_normal(n * dim).astype(np.float32)), dim
            ),
        }
        if ranked:
            cols["rank"] = pa.array(np.tile(np.arange(1, per_video + 1), n_videos))
        table = pa.table(cols).take(pa.array(rng.permutation(n)))
        folder = root / name
        folder.mkdir()
        for i, part in enumerate(np.array_split(np.arange(n), n_parts)):
            pq.write_table(table.take(pa.array(part)), folder / f"part-{i:05d}.parquet")
        (folder / "_SUCCESS").touch()
        return folder

    return write("experts", 6, False), write("predictions", 10, True)


@pytest.fixture(scope="module")
def big_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _big_parts(tmp_path_factory.mktemp("big"), 60_000)


def _no_run_running(db: Path) -> None:
    if not db.exists():
        return
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id]):
            assert run.info.status != "RUNNING", run.info.run_id


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_partitioning_removes_the_buckets(
    big_inputs: tuple[Path, Path], tmp_path: Path, sig: signal.Signals
) -> None:
    experts, predictions = big_inputs
    temp = tmp_path / "tmp"
    temp.mkdir()
    db = tmp_path / "mlflow.db"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "evaluator",
            f"data.experts={experts}",
            f"data.predictions={predictions}",
            f"mlflow.tracking_uri=sqlite:///{db}",
            "engine.memory_budget_mb=1",
            f"engine.temp_dir={temp}",
            f"hydra.run.dir={tmp_path / 'out'}",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A suite started in the background inherits SIGINT ignored: give the child Ctrl-C back.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    for _ in range(6000):  # a hang guard (about 2 minutes), not a speed check
        if any(p.is_dir() for p in temp.iterdir()):
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    else:
        pytest.fail("the buckets never appeared")
    time.sleep(0.3)  # inside the partitioning
    assert proc.poll() is None, "the evaluation finished before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in err, err
    assert list(temp.iterdir()) == []
    _no_run_running(db)


def test_no_space_left_while_partitioning_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up on the third bucket write: InputError, and the buckets are gone."""
    experts, predictions = _big_parts(tmp_path, 400, n_parts=2)
    real_new_file = pa.ipc.new_file
    writes = [0]

    class FullDisk:
        def __init__(self, writer: pa.ipc.RecordBatchFileWriter) -> None:
            self.writer = writer

        def write_table(self, table: pa.Table) -> None:
            writes[0] += 1
            if writes[0] > 2:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.writer.write_table(table)

        def close(self) -> None:
            self.writer.close()

    monkeypatch.setattr(
        partition.pa.ipc, "new_file", lambda *a, **k: FullDisk(real_new_file(*a, **k))
    )
    temp = tmp_path / "tmp"
    temp.mkdir()
    with pytest.raises(InputError, match="no space left on the device") as refused:
        stream_poster(
            resolve_source(experts, "experts"),
            resolve_source(predictions, "predictions"),
            SETTINGS,
            budget_bytes=20_000,
            temp_dir=temp,
        )
    assert str(temp) in str(refused.value) and "engine.temp_dir" in str(refused.value)
    assert writes[0] == 3
    assert list(temp.iterdir()) == []
