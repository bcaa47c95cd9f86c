"""Reliability at the command line: one exit-code contract, quick refusals of bad values, and
saved outputs recorded later after the tracking server went away (docs/reliability.md).

Every case runs the real console scripts in a fresh process, against real stores: a sqlite
file, and a real `mlflow server` that is killed (SIGTERM, then SIGKILL) while a run is being
logged and then started again on the same database.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from evaluator.errors import InputError
from tests.conftest import _free_port, record_failing_dataset, run_cli

BIN = Path(sys.executable).parent


def _script(name: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run(
        [str(BIN / name), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


# ----------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize(
    ("program", "args", "needle"),
    [
        ("video-eval", ["matching.time_tolerence_s=3"], "time_tolerence_s"),
        ("video-eval", ["matching.time_tolerance_s=abc"], "time_tolerance_s"),
        ("video-eval", ["task=foo"], "task"),
        ("video-eval", ["sweep.time_tolerances_s=[a,b]"], "time_tolerances_s"),
        ("video-eval-promote", ["model.name=m", "promote.alpah=0.1"], "alpah"),
        ("video-eval-compare", ["bootstrap.n_resample=3"], "n_resample"),
    ],
)
def test_hydra_config_errors_exit_2_in_one_paragraph(
    tmp_path: Path, program: str, args: list[str], needle: str
) -> None:
    proc = _script(program, args, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"{program}: error: config:"), proc.stderr
    assert needle in proc.stderr


@pytest.mark.parametrize(
    ("override", "key", "allowed"),
    [
        ("metrics.bootstrap.n_resamples=-5", "metrics.bootstrap.n_resamples=-5", ">= 0"),
        ("report.page_size=0", "report.page_size=0", ">= 1"),
        ("report.thumbnail_px=-1", "report.thumbnail_px=-1", ">= 0"),
        ("slices.min_videos=0", "slices.min_videos=0", ">= 1"),
        ("metrics.bootstrap.confidence=1.5", "metrics.bootstrap.confidence=1.5", "(0, 1)"),
        ("matching.min_cosine=2", "matching.min_cosine=2", "[-1, 1]"),
        ("metrics.k_max=0", "metrics.k_max=0", ">= 1"),
    ],
)
def test_out_of_range_values_are_refused_with_key_value_and_range(
    demo_files, tmp_path: Path, override: str, key: str, allowed: str
) -> None:
    db = tmp_path / "mlflow.db"
    proc = run_cli(
        [
            f"data.experts={demo_files['experts']}",
            f"data.predictions={demo_files['baseline']}",
            f"mlflow.tracking_uri=sqlite:///{db}",
            "hydra.run.dir=out",
            override,
        ],
        tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert key in proc.stderr and "allowed" in proc.stderr and allowed in proc.stderr
    assert not db.exists()  # refused before the store is touched
    assert not (tmp_path / "out" / "summary.json").exists()


def test_a_bad_path_is_refused_before_the_heavy_imports(tmp_path: Path) -> None:
    """The refusal happens before MLflow, torch, matplotlib or pyarrow are imported."""
    code = (
        "import sys\n"
        "sys.argv = ['video-eval', 'data.experts=nope.parquet', 'data.predictions=x.parquet',"
        " 'hydra.run.dir=out']\n"
        "from evaluator.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    heavy = sorted(m for m in ('mlflow', 'torch', 'matplotlib', 'pyarrow')"
        " if m in sys.modules)\n"
        "    print('EXIT', exc.code, 'HEAVY', ','.join(heavy) or '-')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert "EXIT 2 HEAVY -" in proc.stdout, (proc.stdout, proc.stderr)
    assert "nope.parquet: file not found" in proc.stderr


def test_an_integer_beyond_float64_exact_range_names_file_column_and_row(
    demo_files, tmp_path: Path
) -> None:
    preds = pd.read_parquet(demo_files["baseline"])
    preds["timestamp"] = preds["timestamp"].round().astype("int64")
    preds.loc[7, "timestamp"] = 2**53 + 1
    bad = tmp_path / "huge.parquet"
    preds.to_parquet(bad, index=False)
    proc = run_cli(
        [
            f"data.experts={demo_files['experts']}",
            f"data.predictions={bad}",
            f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
            "hydra.run.dir=out",
        ],
        tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert str(bad) in proc.stderr and "'timestamp'" in proc.stderr
    assert "9007199254740993" in proc.stderr  # the value, as the user wrote it


# ----------------------------------------------------------------------------- record later


@contextlib.contextmanager
def _server(db: Path, artifacts: Path, log: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    port = _free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with log.open("a") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "mlflow", "server",
                "--backend-store-uri", f"sqlite:///{db}",
                "--artifacts-destination", str(artifacts),
                "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            ],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):  # a hang guard (about 90 s), not a speed check
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            assert proc.poll() is None, log.read_text()[-2000:]
            time.sleep(0.3)
        else:
            pytest.fail(f"mlflow server did not start: {log.read_text()[-2000:]}")
        yield url, proc
    finally:
        _kill(proc)


def _kill(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, then SIGKILL if it is still there."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=0.5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)


def _running_runs(db: Path) -> int:
    if not db.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as con:
        try:
            return con.execute("select count(*) from runs where status='RUNNING'").fetchone()[0]
        except sqlite3.OperationalError:  # tables not created yet
            return 0


def _artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    out: set[str] = set()
    for f in client.list_artifacts(run_id, path):
        out |= _artifacts(client, run_id, f.path) if f.is_dir else {f.path}
    return out


@pytest.mark.slow
def test_server_killed_mid_logging_then_recorded_later(demo_files, tmp_path: Path) -> None:
    db, art, log = tmp_path / "server.db", tmp_path / "artifacts", tmp_path / "server.log"
    evaluate = [
        f"data.experts={demo_files['experts']}",
        f"data.predictions={demo_files['baseline']}",
        "model.name=poster-ranker",
        "model.version=7",
        "mlflow.experiment=lost-server",
    ]
    with _server(db, art, log) as (url, server):
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        job = subprocess.Popen(
            [str(BIN / "video-eval"), *evaluate, f"mlflow.tracking_uri={url}", "hydra.run.dir=out"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for _ in range(18000):  # a hang guard (about 3 minutes), not a speed check
            if _running_runs(db):  # the run exists: logging has begun
                break
            assert job.poll() is None, job.communicate()
            time.sleep(0.01)
        else:
            pytest.fail("the evaluation never created its run")
        _kill(server)
        _, err = job.communicate(timeout=300)
    assert job.returncode == 3, err
    assert "Traceback" not in err
    out = tmp_path / "out"
    assert (out / "summary.json").is_file() and (out / "record.json").is_file()
    hint = next(line.strip() for line in err.splitlines() if "video-eval-record" in line)
    assert hint == f"video-eval-record {out} mlflow.tracking_uri={url}"

    with _server(db, art, log) as (url2, _):  # the same store, on another port
        client = MlflowClient(tracking_uri=url2)
        exp = client.get_experiment_by_name("lost-server")
        assert [r.info.status for r in client.search_runs([exp.experiment_id])] == ["RUNNING"]
        first = _script("video-eval-record", [str(out), f"mlflow.tracking_uri={url2}"], tmp_path)
        assert first.returncode == 0, first.stderr
        assert "completed as MLflow run" in first.stdout
        again = _script("video-eval-record", [str(out), f"mlflow.tracking_uri={url2}"], tmp_path)
        assert again.returncode == 0 and "already recorded" in again.stdout
        runs = client.search_runs([exp.experiment_id])
        assert [r.info.status for r in runs] == ["FINISHED"]  # one run, completed in place
        recorded = runs[0]

        # The same evaluation made live against a healthy server, for comparison.
        live_out = tmp_path / "live"
        live = _script(
            "video-eval",
            [*evaluate, "mlflow.experiment=live", f"mlflow.tracking_uri={url2}",
             f"hydra.run.dir={live_out}"],
            tmp_path,
        )  # fmt: skip
        assert live.returncode == 0, live.stderr
        live_exp = client.get_experiment_by_name("live")
        (reference,) = client.search_runs([live_exp.experiment_id])
        assert recorded.data.metrics == reference.data.metrics
        assert recorded.data.params == reference.data.params
        for key in ("model.name", "model.version", "dataset.digest", "evaluator.task"):
            assert recorded.data.tags[key] == reference.data.tags[key]
        assert _artifacts(client, recorded.info.run_id) == _artifacts(client, reference.info.run_id)
        steps = [m.step for m in client.get_metric_history(recorded.info.run_id, "recall_at_k")]
        assert sorted(steps) == list(range(1, 11))
        models = client.search_logged_models(
            experiment_ids=[exp.experiment_id], filter_string="name = 'poster-ranker'"
        )
        assert len(models) == 1 and models[0].source_run_id == recorded.info.run_id
        assert [d.dataset.digest for d in recorded.inputs.dataset_inputs] == [
            d.dataset.digest for d in reference.inputs.dataset_inputs
        ]
    manifest = json.loads((out / "record.json").read_text())
    assert manifest["record_id"] == recorded.data.tags["evaluator.record_id"]


def test_record_later_when_the_server_was_never_there(demo_files, tmp_path: Path) -> None:
    """Recorded into a sqlite store from saved outputs: created once, then left alone."""
    src = tmp_path / "first.db"
    proc = run_cli(
        [
            f"data.experts={demo_files['experts']}",
            f"data.predictions={demo_files['baseline']}",
            f"mlflow.tracking_uri=sqlite:///{src}",
            "hydra.run.dir=out",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    target = tmp_path / "later.db"
    args = [str(tmp_path / "out"), f"mlflow.tracking_uri=sqlite:///{target}"]
    made = _script("video-eval-record", args, tmp_path)
    assert made.returncode == 0 and "created as MLflow run" in made.stdout, made.stderr
    again = _script("video-eval-record", args, tmp_path)
    assert again.returncode == 0 and "already recorded" in again.stdout
    a = MlflowClient(tracking_uri=f"sqlite:///{src}")
    b = MlflowClient(tracking_uri=f"sqlite:///{target}")
    (ra,) = a.search_runs([a.get_experiment_by_name("poster-frames").experiment_id])
    (rb,) = b.search_runs([b.get_experiment_by_name("poster-frames").experiment_id])
    assert ra.data.metrics == rb.data.metrics and ra.data.params == rb.data.params
    assert _artifacts(a, ra.info.run_id) == _artifacts(b, rb.info.run_id)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "exactly one OUTPUT_DIR"),
        (["nowhere"], "no such folder"),
        (["."], "no record.json here"),
        ([".", "mlflow.tracking_urix=sqlite:///x.db"], "unknown argument"),
    ],
)
def test_record_later_refuses_bad_arguments_with_exit_2(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    proc = _script("video-eval-record", args, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- the fault table


def test_a_missing_sqlite_store_folder_is_refused_before_the_work(
    demo_files, tmp_path: Path
) -> None:
    proc = run_cli(
        [
            f"data.experts={demo_files['experts']}",
            f"data.predictions={demo_files['baseline']}",
            f"mlflow.tracking_uri=sqlite:///{tmp_path / 'nowhere' / 'mlflow.db'}",
            "hydra.run.dir=out",
        ],
        tmp_path,
    )
    assert proc.returncode == 3, proc.stderr
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "summary.json").exists()


def test_a_full_disk_in_the_output_folder_leaves_nothing_half_written(tmp_path: Path) -> None:
    import errno

    from evaluator.io.outputs import write_all, write_json

    def full(path: Path) -> None:
        path.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "out"
    with pytest.raises(InputError, match="cannot write the results there") as refused:
        write_all(out, {"summary.json": write_json({"a": 1}), "match_table.parquet": full})
    assert "No space left on device" in str(refused.value)
    assert not (out / "summary.json").exists() and not (out / "match_table.parquet").exists()


def test_an_image_path_that_leaves_the_image_root_names_column_and_row(tmp_path: Path) -> None:
    from evaluator.io.images import frame_refs

    frame = pd.DataFrame({"image": ["a/1.jpg", "b/2.jpg", "../../etc/passwd"]})
    with pytest.raises(InputError, match="leaves the image root") as refused:
        frame_refs(tmp_path / "experts.parquet", frame, tmp_path)
    assert "'image'" in str(refused.value) and "row 3" in str(refused.value)


def test_ctrl_c_while_recording_marks_the_run_failed(tmp_path: Path) -> None:
    # A dataset input whose logging is cut off by Ctrl-C (after the metrics).
    run = record_failing_dataset(tmp_path, "ctrl-c", KeyboardInterrupt())
    assert run.info.status == "FAILED"
    assert run.data.tags["evaluator.error"].startswith("KeyboardInterrupt")
