"""One lifecycle for every command: Ctrl-C (SIGINT) exits 130, SIGTERM exits 143.

`evaluator.cli` installs the handlers first thing, before Hydra, MLflow or the task code is
imported. A handler only records the request. The work stops at the next safe point, a call
to `checkpoint` between two pieces of C-library work (a batch read, a unit scored, a file
written, an MLflow call): `checkpoint` raises `Interrupted` (a `SystemExit` with the exit
status), and the usual ``finally`` / ``with`` cleanup runs: temporary buckets and staging
folders are removed, and an MLflow run being recorded is marked FAILED by a store that no
interrupted write has left locked.

Why not Python's default (KeyboardInterrupt raised wherever the interpreter happens to be):
raised inside pandas' JSON writer, Arrow or a SQLAlchemy session, it crashed the process
(SIGSEGV, SIGBUS) or left a sqlite write lock behind, so the run could not be marked FAILED.
See docs/reliability.md#signals.

A SIGINT that is ignored when the command starts (a background job of a non-interactive
shell) stays ignored, as the shell asked.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from evaluator.errors import InputError, ServiceError

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_INPUT_ERROR = 2
EXIT_SERVICE_ERROR = 3
EXIT_INTERNAL_ERROR = 4
# The console scripts (pyproject.toml) and ``python -m evaluator``.
COMMANDS = frozenset(
    {
        "video-eval",
        "video-eval-compare",
        "video-eval-promote",
        "video-eval-register",
        "video-eval-record",
    }
)


class Interrupted(SystemExit):
    """The command was asked to stop by a signal; its exit status is 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}"


def exit_code_of(exc: BaseException) -> int:
    """The exit status of a command that ends on ``exc`` (docs/reliability.md#exit-status).

    2 bad input or config, 3 a service (MLflow, a Spark job) failed, 128 + N stopped by
    signal N (Ctrl-C: 130), 4 anything else: a bug. Hydra's own config errors are input
    errors too; `evaluator.cli.exit_status` maps them before asking here.
    """
    if isinstance(exc, InputError):
        return EXIT_INPUT_ERROR
    if isinstance(exc, ServiceError):
        return EXIT_SERVICE_ERROR
    if isinstance(exc, Interrupted):
        return 128 + exc.signum
    if isinstance(exc, KeyboardInterrupt):
        return 128 + signal.SIGINT
    return EXIT_INTERNAL_ERROR


_requested: int | None = None
_previous: dict[int, Any] = {}
_status: int | None = None  # how the command ended (None: it did not run)


def _record(signum: int, frame: FrameType | None) -> None:
    global _requested
    if _requested is None:
        _requested = signum


def stop_requested() -> int | None:
    """The signal that asked the command to stop, or None."""
    return _requested


def checkpoint() -> None:
    """A safe point: raise `Interrupted` if a stop was requested.

    Raises:
        Interrupted: SIGINT or SIGTERM arrived since the command started.
    """
    if _requested is not None:
        raise Interrupted(_requested)


def install() -> bool:
    """Record SIGINT and SIGTERM instead of acting on them (main thread only; idempotent).

    Returns:
        True when this call installed the handlers (`restore` undoes it).
    """
    if _previous or threading.current_thread() is not threading.main_thread():
        return False
    for sig in SIGNALS:
        current = signal.getsignal(sig)
        if sig == signal.SIGINT and current == signal.SIG_IGN:
            continue  # a background job: the shell asked for Ctrl-C to be ignored
        _previous[sig] = current
        signal.signal(sig, _record)
    return True


def restore() -> None:
    """Put back the handlers `install` replaced and forget any stop request."""
    global _requested
    for sig, handler in _previous.items():
        signal.signal(sig, handler)
    _previous.clear()
    _requested = None


def install_in_command_process() -> None:
    """`install`, when this process was started as one of the commands.

    A library user or a test runner that imports `evaluator.cli` keeps its own signal
    handling; the commands get theirs before anything heavy is imported.
    """
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if Path(sys.argv[0]).name in COMMANDS or getattr(spec, "name", "") == "evaluator.__main__":
        install()
        atexit.register(_end_process)  # the first exit handler registered runs last


def _end_process() -> None:
    """The last exit handler of a command process: end it now, with the command's status.

    What is left is the interpreter's teardown, which puts the default signal actions back
    first: a signal in it would kill the process (status -2 / -15) instead of 130 / 143.
    """
    if _status is None:
        return  # the command never ran (an error at import): Python reports it
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)  # from here on a signal stays pending
    pending = sorted(signal.sigpending() & set(SIGNALS))
    stop = _requested if _requested is not None else (pending[0] if pending else None)
    status = _status if stop is None else 128 + stop
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


@contextlib.contextmanager
def command() -> Iterator[None]:
    """The lifecycle of one command: handlers installed (if not yet), a safe point on entry
    and one on exit, and, when this call installed them, the previous handlers back after.

    Raises:
        Interrupted: a stop was requested, also one that came after the work's last safe
            point (the command then exits 130 / 143, not with the status it was ending with).
    """
    global _status
    installed = install()
    _status = 1  # until it ends in one of the ways below
    try:
        checkpoint()
        try:
            yield
        except SystemExit as exc:
            if _requested is not None and not isinstance(exc, Interrupted):
                raise Interrupted(_requested) from None
            _status = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            raise
        checkpoint()
        _status = 0
    finally:
        if installed:
            restore()
