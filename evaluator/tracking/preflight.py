"""One check of the tracking store before the work, and one lock around creating it.

`check_store` runs at the command-line edge, after the config checks and before the inputs
are read. Within a few seconds it refuses what would otherwise fail only after the whole
evaluation (or retry for minutes):

- a URI MLflow cannot record in: an unknown scheme (``foo://bar``), a plain path or
  ``file:`` (MLflow 3 retired its filesystem backend), a server URL without a host: status 2;
- a sqlite store whose path is a folder or a file that is not an SQLite database, whose
  folder is missing or not writable, or that another process holds locked (``BEGIN
  EXCLUSIVE``) for longer than the check waits: status 3;
- a tracking server that does not answer (`evaluator.tracking.reachability`): status 3.

`open_store` opens a sqlite store for the first time in this process while holding an
exclusive lock on ``<db>.lock`` beside the database: two evaluations that start at once
against a new store would otherwise both run MLflow's table migrations, and one of them
fails half-way (``table _alembic_tmp_tags already exists``), leaving the store broken. The
lock file stays (removing a lock file races with a process about to take it).

`bound_http_retries` bounds MLflow's HTTP retries and quiets its tracebacks before a command
records anything.

MLflow: like `evaluator.tracking.reachability`, `check_store` imports no MLflow (a bad URI is
refused before MLflow loads); `open_store` opens the store through MLflow's client and
`check_names` applies MLflow's own name rules, both importing MLflow when called.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from evaluator.errors import InputError, TrackingError
from evaluator.tracking.reachability import PROBE_TIMEOUT_S, probe_tracking_uri, sqlite_path

# Schemes MLflow 3 records in. sqlite and http(s) are checked here; the other databases and
# Databricks are left to MLflow (their reachability needs their drivers and credentials).
DATABASE_SCHEMES = ("postgresql", "mysql", "mssql")
OTHER_SCHEMES = ("databricks", "databricks-uc", "uc")
SQLITE_HEADER = b"SQLite format 3\x00"
_ABSENT = object()
LOCK_SUFFIX = ".lock"
STORE_HINT = "pass mlflow.tracking_uri=sqlite:///mlflow.db (a store in this folder)"


def check_uri(uri: str, key: str = "mlflow.tracking_uri") -> None:
    """Refuse a tracking URI MLflow cannot record in (no I/O).

    Args:
        uri: the tracking URI.
        key: the config key or argument that gave it, for the message.

    Raises:
        InputError: an unknown scheme, a plain path or ``file:`` URI, a ``sqlite:`` URI that is
            not ``sqlite:///PATH``, or a server URL without a host.
    """
    allowed = (
        "sqlite:///PATH, http(s)://HOST:PORT, a postgresql/mysql/mssql database URI, or databricks"
    )
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower().split("+", 1)[0]
    if not uri.strip():
        raise InputError(f"config: {key} is empty; allowed: {allowed}.")
    if scheme in ("", "file"):  # a path
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() in ("1", "true") and not (
            Path(parsed.path or uri).is_file()
        ):
            return
        raise InputError(
            f"config: {key}={uri} is a file path, not a tracking store MLflow 3 records in "
            f"(its filesystem backend is retired); allowed: {allowed}. For a local store pass "
            f"{key}=sqlite:///{Path(parsed.path or uri).with_suffix('.db').name}."
        )
    if scheme == "sqlite":
        if not uri.startswith("sqlite:///") or len(uri) == len("sqlite:///"):
            raise InputError(
                f"config: {key}={uri} is not a sqlite store URI; allowed: sqlite:///PATH "
                f"(three slashes, then a relative path; four for an absolute one)."
            )
        return
    if scheme in ("http", "https"):
        if not parsed.hostname:
            raise InputError(f"config: {key}={uri} names no host; allowed: {allowed}.")
        return
    if scheme in DATABASE_SCHEMES or scheme in OTHER_SCHEMES:
        return
    raise InputError(
        f"config: {key}={uri}: unknown tracking URI scheme '{parsed.scheme}'; allowed: {allowed}."
    )


def check_store(
    uri: str, key: str = "mlflow.tracking_uri", timeout_s: float = PROBE_TIMEOUT_S
) -> str | None:
    """The pre-flight check of the tracking store (see the module docstring).

    Nothing is created: a sqlite store that does not exist yet is created when the run is
    recorded, so bad input never leaves a new store behind.

    Args:
        uri: the tracking URI.
        key: the config key that gave it, for messages.
        timeout_s: the most seconds one check waits (a server's answer, a held lock).

    Returns:
        One line saying what answered, or None.

    Raises:
        InputError: a URI MLflow cannot record in (`check_uri`).
        TrackingError: the store cannot be reached or written; nothing was evaluated.
    """
    check_uri(uri, key)
    db = sqlite_path(uri)
    if db is None:
        return probe_tracking_uri(uri, timeout_s)
    probe_tracking_uri(uri, timeout_s)  # the folder exists
    _check_sqlite(uri, db, timeout_s)
    return None


def _refuse(uri: str, problem: str, hint: str = "") -> TrackingError:
    hint = hint or f"Fix mlflow.tracking_uri (or $MLFLOW_TRACKING_URI), or {STORE_HINT}"
    return TrackingError(
        f"the MLflow store {uri} cannot be used: {problem}; nothing was evaluated. {hint}."
    )


def _check_sqlite(uri: str, db: Path, timeout_s: float) -> None:
    folder = db.resolve().parent
    if db.is_dir():
        raise _refuse(uri, f"{db} is a folder, not a database file")
    if db.exists() and not db.is_file():
        raise _refuse(uri, f"{db} is not a regular file")
    if not db.exists():
        try:  # the store is created on the first run: the folder must take new files
            fd, probe = tempfile.mkstemp(prefix=".mlflow-write-check-", dir=folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise _refuse(uri, f"its folder {folder} is not writable ({exc.strerror})") from None
        return
    try:
        with db.open("rb") as handle:
            head = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise _refuse(uri, f"{db} cannot be read ({exc.strerror})") from None
    if head and head != SQLITE_HEADER:
        raise _refuse(uri, f"{db} is not an SQLite database")
    _check_lock(uri, db, timeout_s)


def _check_lock(uri: str, db: Path, timeout_s: float) -> None:
    """Take and release a write lock: a store held locked (or read-only) is refused now."""
    start = time.monotonic()
    try:
        con = sqlite3.connect(f"file:{db}?mode=rw", uri=True, timeout=timeout_s)
    except sqlite3.Error as exc:
        raise _refuse(uri, f"{db} cannot be opened for writing ({exc})") from None
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise _refuse(
                uri,
                f"another process holds the database locked (waited "
                f"{time.monotonic() - start:.1f} s)",
                "Run the command again when that process is done",
            ) from None
        raise _refuse(uri, f"{db} cannot be written ({exc})") from None
    finally:
        con.close()


_opened: set[str] = set()
_opened_lock = threading.Lock()


@contextlib.contextmanager
def creation_lock(db: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<db>.lock`` (the file beside the database)."""
    path = db.with_name(db.name + LOCK_SUFFIX)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                break
            except OSError as exc:  # interrupted by a signal handler that returned
                if exc.errno != errno.EINTR:
                    raise
        yield
    finally:
        os.close(fd)  # releases the lock


def open_store(uri: str) -> None:
    """Open (creating it if needed) the store of ``uri`` once per process, under the lock.

    For a sqlite store the first open runs MLflow's schema check or, for a new store, its
    table migrations while `creation_lock` is held, so concurrent processes create a new
    store one after the other. Other stores are left to MLflow.

    Raises:
        Exception: whatever MLflow raises (the caller reports it as a tracking error).
    """
    db = sqlite_path(uri)
    if db is None:
        return
    key = str(db.resolve())
    with _opened_lock:
        if key in _opened:
            return
        from mlflow.tracking import MlflowClient

        with creation_lock(db):
            MlflowClient(tracking_uri=uri).get_experiment_by_name("Default")
        _opened.add(key)


def check_names(cfg: Any) -> None:
    """Refuse a model or experiment name MLflow would refuse only when the run is recorded.

    Checked with MLflow's own rules: ``model.name`` names the evaluation's LoggedModel (no
    ``/ : . % " '``) and later its registered model; ``mlflow.experiment`` must be a
    non-empty name of at most MLflow's maximum length.

    Args:
        cfg: the composed config (None, or keys it lacks: nothing to check).

    Raises:
        InputError: naming the key, the value and what MLflow allows.
    """
    if cfg is None:
        return
    from mlflow.exceptions import MlflowException
    from mlflow.utils import validation
    from omegaconf import OmegaConf

    rules = {
        "model.name": ("_validate_logged_model_name", "_validate_model_name"),
        "mlflow.experiment": ("_validate_experiment_name",),
    }
    for key, checks in rules.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is _ABSENT or (value is None and key == "model.name"):
            continue
        for check in checks:
            validate = getattr(validation, check, None)
            if validate is None:  # another MLflow: it checks when recording
                continue
            try:
                validate(value)
            except MlflowException as exc:
                raise InputError(
                    f"config: {key}={value!r} is not a name MLflow accepts: {exc.message} "
                    f"Nothing was evaluated; pass another {key}."
                ) from None


# MLflow modules that log an exception's traceback at ERROR level before raising it (a
# sqlite store locked or gone, an artifact upload refused). The commands report that error
# themselves, in one paragraph with what to do; the traceback above it is noise.
TRACEBACK_LOGGERS = (
    "mlflow.store.db.utils",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.artifact.mlflow_artifacts_repo",
    "mlflow.store.artifact.runs_artifact_repo",
)


def _no_traceback(record: logging.LogRecord) -> bool:
    return not (record.levelno >= logging.ERROR and record.exc_info)


def quiet_mlflow_tracebacks() -> None:
    """Drop the ERROR tracebacks MLflow logs before raising (the command-line edge reports
    the error itself). Other MLflow log lines are kept."""
    for name in TRACEBACK_LOGGERS:
        logger = logging.getLogger(name)
        if _no_traceback not in logger.filters:
            logger.addFilter(_no_traceback)


# MLflow's own HTTP retry schedule, bounded: a server lost in the middle of recording fails the
# recording within seconds instead of four minutes. The user's settings win.
HTTP_RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",  # an integer in MLflow 3.17
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def bound_http_retries() -> None:
    """Set MLflow's HTTP retry settings to the bounded defaults unless the user set them,
    and drop the tracebacks MLflow logs above errors the commands report themselves
    (`quiet_mlflow_tracebacks`)."""
    for name, value in HTTP_RETRY_DEFAULTS.items():
        os.environ.setdefault(name, value)
    quiet_mlflow_tracebacks()
