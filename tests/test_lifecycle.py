"""The lifecycle of a command (`evaluator.lifecycle`) and the one place that turns an exception
into an exit status (`evaluator.cli.exit_status`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from evaluator import lifecycle
from evaluator.cli import exit_status
from evaluator.engines.spark_session import SparkJobError, job_error
from evaluator.errors import InputError, ServiceError, TrackingError
from tests.conftest import record_failing_dataset


@pytest.fixture
def handlers():
    # A suite run as a background job inherits SIGINT ignored (kept ignored by `install`).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    assert lifecycle.install()
    try:
        yield
    finally:
        lifecycle.restore()
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_is_recorded_and_raised_at_the_next_safe_point(handlers, sig) -> None:
    os.kill(os.getpid(), sig)  # the handler runs here and only records it
    assert lifecycle.stop_requested() == sig
    with pytest.raises(lifecycle.Interrupted) as stopped:
        lifecycle.checkpoint()
    assert stopped.value.code == 128 + sig
    os.kill(os.getpid(), signal.SIGTERM)  # a second signal changes nothing
    assert lifecycle.stop_requested() == sig


def test_a_signal_after_the_last_safe_point_still_ends_the_command_with_its_status() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(lifecycle.Interrupted) as stopped, lifecycle.command():
        os.kill(os.getpid(), signal.SIGTERM)
        raise SystemExit(0)  # the work had finished
    assert stopped.value.code == 143
    assert lifecycle.stop_requested() is None  # the command's handlers are gone again
    assert signal.getsignal(signal.SIGTERM) == before


def test_an_ignored_sigint_stays_ignored() -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with lifecycle.command():
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) != signal.SIG_DFL
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize(
    ("exc", "code", "says"),
    [
        (InputError("f.parquet: column 'rank': bad"), 2, "error: f.parquet: column 'rank'"),
        (TrackingError("cannot start an MLflow run"), 3, "error: cannot start an MLflow run"),
        (job_error(RuntimeError("Job aborted due to stage failure: x in stage 3.0"), "s"), 3, ""),
        (lifecycle.Interrupted(signal.SIGINT), 130, "interrupted"),
        (lifecycle.Interrupted(signal.SIGTERM), 143, "stopped by SIGTERM"),
        (KeyboardInterrupt(), 130, "interrupted"),
        (ValueError("a matplotlib error while drawing"), 4, "Traceback"),
    ],
)
def test_each_exception_has_one_exit_status(exc, code, says, capsys) -> None:
    try:
        raise exc
    except BaseException as raised:
        assert exit_status("video-eval", raised) == code
    assert says in capsys.readouterr().err


def test_a_failed_spark_job_is_a_service_error_not_an_input_error() -> None:
    error = job_error(RuntimeError("Job aborted due to stage failure: x in stage 3.0"), "s")
    assert isinstance(error, SparkJobError) and isinstance(error, ServiceError)
    assert not isinstance(error, InputError | ValueError)
    found = job_error(RuntimeError("evaluator.errors.InputError: f: column 'x': bad"), "s")
    assert type(found) is InputError  # bad data found on an executor stays an input error


def test_a_bug_while_recording_is_not_a_tracking_error(tmp_path: Path) -> None:
    """Only MLflow and network failures become TrackingError; a bug keeps its type (exit 4)
    and the run still ends FAILED."""
    run = record_failing_dataset(tmp_path, "bug", ZeroDivisionError("a bug"))
    assert run.info.status == "FAILED"
    assert run.data.tags["evaluator.error"] == "ZeroDivisionError: a bug"


def test_a_refused_write_is_a_tracking_error(tmp_path: Path) -> None:
    from evaluator.tracking.mlflow_run import RunRecord, record_run

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    missing = tmp_path / "not-there.txt"
    with pytest.raises(TrackingError, match="marked FAILED"):
        record_run(
            tracking_uri=uri,
            experiment="refused",
            run_name="r",
            record=RunRecord(metrics={"m": 1.0}, artifacts=[(missing, None)]),
            artifact_location=(tmp_path / "art").as_uri(),
        )


# A bug injected into a real process: while drawing the plots (before the run exists), and
# while logging the run's tables (pandas' JSON writer inside the MLflow run).
BUGS = {
    "drawing": ("matplotlib.figure", "Figure", "savefig", "a matplotlib error while drawing"),
    "logging": ("pandas", "DataFrame", "to_json", "a pandas error while logging"),
}


@pytest.mark.slow
@pytest.mark.parametrize("where", sorted(BUGS))
def test_a_bug_in_a_real_run_exits_4_with_its_traceback(
    demo_files, tmp_path: Path, where: str
) -> None:
    """A bug (not MLflow, not the network) exits 4 with the traceback, never 3 with a "record
    it later" hint; a run it interrupts ends FAILED, none is left RUNNING."""
    module, cls, method, message = BUGS[where]
    db = tmp_path / "mlflow.db"
    code = (
        f"import sys, {module}\n"
        "def broken(self, *args, **kwargs):\n"
        f"    raise ValueError({message!r})\n"
        f"{module}.{cls}.{method} = broken\n"
        "from evaluator.cli import main\n"
        f"sys.argv = ['video-eval', 'data.experts={demo_files['experts']}', "
        f"'data.predictions={demo_files['baseline']}', 'mlflow.tracking_uri=sqlite:///{db}', "
        f"'hydra.run.dir={tmp_path / 'out'}']\n"
        "main()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 4, proc.stderr[-3000:]
    assert "internal error" in proc.stderr and "Traceback" in proc.stderr
    assert f"ValueError: {message}" in proc.stderr
    assert "video-eval-record" not in proc.stderr
    runs = []
    if db.exists():
        client = MlflowClient(tracking_uri=f"sqlite:///{db}")
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert all(r.info.status == "FAILED" for r in runs)
    assert len(runs) == (1 if where == "logging" else 0)
