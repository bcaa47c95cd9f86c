"""The second round of faults (docs/reliability.md, "What happens on each fault"): each case
runs the real console scripts in fresh processes against real sqlite stores; a lock is held by
another process with ``BEGIN EXCLUSIVE``; concurrency is two real processes at once.

Most cases are refused before the work, so they cost a process start each.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import run_cli

BIN = Path(sys.executable).parent


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}


def _script(name: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / name), *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300
    )


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    """``video-eval ARGS`` started in the background."""
    return subprocess.Popen(
        [str(BIN / "video-eval"), *args],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _evaluate(demo_files, tmp_path: Path, *extra: str, db: Path | None = None):
    db = db or tmp_path / "mlflow.db"
    return run_cli(
        [
            f"data.experts={demo_files['experts']}",
            f"data.predictions={demo_files['baseline']}",
            f"mlflow.tracking_uri=sqlite:///{db}",
            "hydra.run.dir=out",
            "print_summary=false",
            *extra,
        ],
        tmp_path,
    )


def _refused(proc: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def _runs(db: Path) -> list[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as con:
        return [r[0] for r in con.execute("select status from runs")]


# ----------------------------------------------------------------------------- output folders


def test_two_runs_into_one_output_folder_one_is_refused(demo_files, tmp_path: Path) -> None:
    """Row 1: two runs started at once into one hydra.run.dir never mix their files."""
    args = [
        f"data.experts={demo_files['experts']}",
        "mlflow.tracking_uri=sqlite:///mlflow.db",
        "hydra.run.dir=shared",
        "print_summary=false",
    ]
    jobs = [
        _start([*args, f"data.predictions={demo_files[m]}", f"model.name={m}"], tmp_path)
        for m in ("baseline", "candidate")
    ]
    done = [(job, *job.communicate(timeout=300)) for job in jobs]
    codes = sorted(job.returncode for job, _, _ in done)
    assert codes == [0, 2], [err for _, _, err in done]
    (winner,) = [i for i, (job, _, _) in enumerate(done) if job.returncode == 0]
    loser_err = done[1 - winner][2]
    assert "Traceback" not in loser_err and "hydra.run.dir=" in loser_err
    assert "another run" in loser_err
    summary = json.loads((tmp_path / "shared" / "summary.json").read_text())
    record = json.loads((tmp_path / "shared" / "record.json").read_text())
    model = ("baseline", "candidate")[winner]
    assert record["tags"]["model.name"] == model  # the folder's files are one run's
    assert Path(summary["predictions"]).name == f"{model}.parquet"
    assert summary["metrics"]["recall_at_10"] == record["metrics"]["recall_at_10"]
    again = _script("video-eval", [*args, f"data.predictions={demo_files['baseline']}"], tmp_path)
    _refused(again, 2, "already holds files of another run", "record.json")


def test_concurrent_runs_into_a_new_store_are_both_recorded_in_folders_of_their_own(
    demo_files, tmp_path: Path
) -> None:
    """Rows 1 and 2: default output folders (one per run, even in the same second) and a new
    sqlite store created by two processes at once (its creation is serialised by a lock)."""
    db = tmp_path / "new.db"
    args = [
        f"data.experts={demo_files['experts']}",
        f"data.predictions={demo_files['baseline']}",
        f"mlflow.tracking_uri=sqlite:///{db}",
        "print_summary=false",
    ]
    jobs = [_start(args, tmp_path) for _ in range(2)]
    errors = [job.communicate(timeout=300)[1] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], errors
    assert all("Traceback" not in e for e in errors)
    assert sorted(_runs(db)) == ["FINISHED", "FINISHED"]
    folders = list((tmp_path / "outputs").glob("*/*"))
    assert len(folders) == 2 and all((f / "record.json").is_file() for f in folders)
    ids = {json.loads((f / "record.json").read_text())["record_id"] for f in folders}
    assert len(ids) == 2
    assert (tmp_path / "new.db.lock").is_file()  # the creation lock beside the store


@pytest.mark.parametrize(
    ("where", "needle"),
    [
        ("a_file.txt", "is not a folder"),
        ("/proc/video-eval-out", "cannot be created"),
    ],
)
def test_an_output_folder_that_cannot_be_written_is_refused_naming_the_key(
    demo_files, tmp_path: Path, where: str, needle: str
) -> None:
    """Row 6."""
    (tmp_path / "a_file.txt").write_text("not a folder\n")
    proc = _evaluate(demo_files, tmp_path, f"hydra.run.dir={where}")
    _refused(proc, 2, "hydra.run.dir", where, needle)
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize(
    ("value", "needle"),
    [("missing-folder", "no such folder"), ("a_file.txt", "is not a folder")],
)
def test_an_unusable_temp_dir_is_refused_before_the_work(
    demo_files, tmp_path: Path, value: str, needle: str
) -> None:
    """Row 12."""
    (tmp_path / "a_file.txt").write_text("x\n")
    proc = _evaluate(demo_files, tmp_path, f"engine.temp_dir={value}")
    _refused(proc, 2, f"engine.temp_dir={value}", needle)
    assert not (tmp_path / "mlflow.db").exists()


# ----------------------------------------------------------------------------- the store


@pytest.mark.parametrize(
    ("uri", "code", "needle"),
    [
        ("foo://bar", 2, "unknown tracking URI scheme 'foo'"),
        ("notes.txt", 2, "is a file path, not a tracking store"),
        ("{experts}", 2, "is a file path, not a tracking store"),
        ("sqlite:///notes.txt", 3, "is not an SQLite database"),
        ("sqlite:///{tmp}", 3, "is a folder, not a database file"),
        ("sqlite:////proc/mlflow.db", 3, "is not writable"),
    ],
)
def test_a_tracking_uri_that_cannot_record_is_refused_before_the_work(
    demo_files, tmp_path: Path, uri: str, code: int, needle: str
) -> None:
    """Rows 3 and 4: exit 2 for a URI MLflow cannot use, 3 for a store that cannot be
    written; in seconds, before the inputs are read."""
    (tmp_path / "notes.txt").write_text("not a database\n")
    uri = uri.format(experts=demo_files["experts"], tmp=tmp_path)
    proc = _evaluate(demo_files, tmp_path, f"mlflow.tracking_uri={uri}")
    _refused(proc, code, needle)
    assert not (tmp_path / "out" / "summary.json").exists()
    assert (tmp_path / "notes.txt").read_text() == "not a database\n"


def test_a_store_held_locked_by_another_process_is_refused_within_seconds(
    demo_files, tmp_path: Path
) -> None:
    """Row 5: another process holds the store with BEGIN EXCLUSIVE."""
    db = tmp_path / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()  # an existing store
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys, time\n"
         f"con = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
         "con.execute('BEGIN EXCLUSIVE')\n"
         "print('locked', flush=True)\n"
         "sys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        proc = _evaluate(demo_files, tmp_path)
    finally:
        holder.communicate(input="", timeout=30)
    _refused(proc, 3, "another process holds the database locked", "nothing was evaluated")
    assert not (tmp_path / "out" / "summary.json").exists()


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("model.name=poster.ranker", "model.name='poster.ranker'"),
        ("model.name=team/ranker", "model.name='team/ranker'"),
        ("mlflow.experiment=", "mlflow.experiment=''"),
    ],
)
def test_names_mlflow_refuses_are_refused_before_the_work(
    demo_files, tmp_path: Path, override: str, key: str
) -> None:
    """Row 7."""
    proc = _evaluate(demo_files, tmp_path, override)
    _refused(proc, 2, key, "not a name MLflow accepts")
    assert not (tmp_path / "mlflow.db").exists()
    assert not (tmp_path / "out" / "summary.json").exists()


def test_mlflow_tracebacks_are_not_printed_above_our_message() -> None:
    """The docs item: MLflow logs an ERROR traceback before raising (a locked store); the
    commands report the error in one paragraph, so that traceback is dropped."""
    code = (
        "import logging, sys\n"
        "from evaluator.tracking.preflight import bound_http_retries\n"
        "bound_http_retries()\n"
        "logging.basicConfig(stream=sys.stderr)\n"
        "log = logging.getLogger('mlflow.store.db.utils')\n"
        "try:\n"
        "    raise OSError('database is locked')\n"
        "except OSError:\n"
        "    log.exception('SQLAlchemy database error')\n"
        "log.warning('kept')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "Traceback" not in proc.stderr and "SQLAlchemy" not in proc.stderr
    assert "kept" in proc.stderr


# ----------------------------------------------------------------------------- inputs


def _table(demo_files, name: str) -> pd.DataFrame:
    return pd.read_parquet(demo_files[name])


def _inputs(demo_files, tmp_path: Path) -> dict[str, Path]:
    """Bad inputs, each a small change of the demo predictions."""
    preds = _table(demo_files, "baseline")
    out = {}
    huge = preds.copy()
    huge.loc[3, "timestamp"] = 1e308
    out["huge_timestamp"] = tmp_path / "huge.parquet"
    huge.to_parquet(out["huge_timestamp"], index=False)
    floats = preds.copy()
    floats["video_id"] = [0.5 + i for i in range(len(floats))]
    out["float_id"] = tmp_path / "float_ids.parquet"
    floats.to_parquet(out["float_id"], index=False)
    table = pa.Table.from_pandas(preds, preserve_index=False)
    table = table.append_column("timestamp", table["timestamp"])
    out["dup_parquet"] = tmp_path / "dup.parquet"
    pq.write_table(table, out["dup_parquet"])
    out["dup_csv"] = tmp_path / "dup.csv"
    out["dup_csv"].write_text("video_id,timestamp,rank,timestamp\nv1,1.0,1,2.0\n")
    out["loop"] = tmp_path / "loop.parquet"
    out["loop"].symlink_to(out["loop"])
    out["zero"] = tmp_path / "zero.parquet"
    out["zero"].symlink_to("/dev/zero")
    out["fifo"] = tmp_path / "fifo.parquet"
    os.mkfifo(out["fifo"])
    parts = tmp_path / "parts"
    parts.mkdir()
    half = len(preds) // 2
    preds.iloc[:half].to_parquet(parts / "part-00000.parquet", index=False)
    preds.iloc[half:].drop(columns=["embedding"]).to_csv(parts / "part-00001.csv", index=False)
    (parts / "_SUCCESS").write_text("")
    out["parts"] = parts
    return out


@pytest.mark.parametrize(
    ("case", "role", "needles"),
    [
        ("huge_timestamp", "predictions", ["'timestamp'", "at most 1e10", "row 4"]),
        ("float_id", "predictions", ["'video_id'", "got double"]),
        ("dup_parquet", "predictions", ["column 'timestamp' appears 2 times"]),
        ("dup_csv", "predictions", ["column 'timestamp' appears 2 times"]),
        ("loop", "experts", ["not a regular file", "symbolic link"]),
        ("zero", "experts", ["not a regular file", "character device"]),
        ("fifo", "experts", ["not a regular file", "FIFO"]),
        ("parts", "predictions", ["not parquet part files", "part-00001.csv"]),
    ],
)
def test_bad_inputs_are_refused_naming_file_and_column(
    demo_files, tmp_path: Path, case: str, role: str, needles: list[str]
) -> None:
    """Rows 8, 9, 10, 11 and 17."""
    bad = _inputs(demo_files, tmp_path)[case]
    proc = _evaluate(demo_files, tmp_path, f"data.{role}={bad}")
    _refused(proc, 2, bad.name, *needles)
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("metrics.k_max=1000000", "<= 1000"),
        ("metrics.bootstrap.n_resamples=2000000000", "engine.memory_budget_mb=1024"),
    ],
)
def test_allocations_beyond_the_memory_budget_are_refused_up_front(
    demo_files, tmp_path: Path, override: str, needle: str
) -> None:
    """Row 13: values inside their ranges whose own arrays exceed the budget."""
    proc = _evaluate(demo_files, tmp_path, *override.split())
    _refused(proc, 2, override.split()[0], needle)


# ----------------------------------------------------------------------------- record.json


@pytest.fixture(scope="module")
def live_folder(demo_files, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One live evaluation (exit 0): its output folder and its store (live.db beside it)."""
    where = tmp_path_factory.mktemp("live")
    proc = _evaluate(demo_files, where, "model.name=ranker", db=where / "live.db")
    assert proc.returncode == 0, proc.stderr
    return where / "out"


def _edited(live_folder: Path, tmp_path: Path, edit) -> Path:
    folder = tmp_path / "copy"
    shutil.copytree(live_folder, folder)
    record = json.loads((folder / "record.json").read_text())
    edit(record)
    (folder / "record.json").write_text(json.dumps(record))
    return folder


@pytest.mark.parametrize(
    ("edit", "needles"),
    [
        (lambda r: r.update(params=["a", "b"]), ["field 'params'", "got a list"]),
        (lambda r: r["destination"].pop("experiment"), ["field 'destination.experiment'"]),
        (lambda r: r["logged_model"].update(name="a.b"), ["model.name='a.b'", "MLflow"]),
        (
            lambda r: r["artifacts"].append(["../../../../../../../../etc/hostname", None]),
            ["'artifacts[", "/etc/hostname", "outside the output folder"],
        ),
        (
            lambda r: r["tables"].update({"x.json": "../../../x.parquet"}),
            ["field 'tables.x.json'", "outside the output folder"],
        ),
    ],
)
def test_a_record_file_is_validated_before_anything_is_recorded(
    live_folder: Path, tmp_path: Path, edit, needles: list[str]
) -> None:
    """Rows 14 and 15: the schema and the containment of record.json."""
    folder = _edited(live_folder, tmp_path, edit)
    target = tmp_path / "target.db"
    proc = _script("video-eval-record", [str(folder), f"mlflow.tracking_uri=sqlite:///{target}"],
                   tmp_path)  # fmt: skip
    _refused(proc, 2, "record.json", *needles)
    assert not target.exists()  # nothing recorded


def test_an_interrupted_run_is_recorded_later_with_the_artifacts_of_a_live_run(
    live_folder: Path, tmp_path: Path
) -> None:
    """Row 16: a run's plots and report are drawn before record.json is written (the run is
    linear), so the folder of a run stopped while it was being recorded is recorded later
    with every artifact of a live run, and refused while one of them is missing."""
    from evaluator.tracking.record_later import load_saved_record

    saved = load_saved_record(live_folder)
    listed = {p.relative_to(live_folder).as_posix() for p, _ in saved.record.artifacts}
    assert "report.html" in listed and any(p.startswith("plots/") for p in listed)
    folder = tmp_path / "cut"
    shutil.copytree(live_folder, folder)
    db = tmp_path / "cut.db"

    (folder / "report.html").rename(folder / "report.kept")
    missing = _script("video-eval-record", [str(folder), f"mlflow.tracking_uri=sqlite:///{db}"],
                      tmp_path)  # fmt: skip
    _refused(missing, 2, "missing", "report.html")
    (folder / "report.kept").rename(folder / "report.html")

    done = _script("video-eval-record", [str(folder), f"mlflow.tracking_uri=sqlite:///{db}"],
                   tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    (run,) = client.search_runs([client.get_experiment_by_name("poster-frames").experiment_id])
    live = MlflowClient(tracking_uri=f"sqlite:///{live_folder.parent / 'live.db'}")
    (reference,) = live.search_runs([live.get_experiment_by_name("poster-frames").experiment_id])
    assert run.info.status == "FINISHED"
    assert _artifacts(client, run.info.run_id) == _artifacts(live, reference.info.run_id)


def _artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    out: set[str] = set()
    for f in client.list_artifacts(run_id, path):
        out |= _artifacts(client, run_id, f.path) if f.is_dir else {f.path}
    return out
