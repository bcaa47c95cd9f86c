"""Every folder a run writes, checked before the work; one output folder per run.

The command-line edge checks the output folder (``hydra.run.dir``) and the temporary folder
(``engine.temp_dir``) before the inputs are read: a folder that cannot be created or written
is refused with status 2, naming the key and the folder, instead of failing after the work.

An output folder belongs to one run. `claim_output_dir` marks it with ``.video-eval-run``
(created exclusively, so of two runs started at once into one folder exactly one gets it) and
refuses a folder that holds another run's files: two runs never mix their results, and a
folder's ``record.json`` always describes the files beside it.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path

from evaluator.errors import InputError

CLAIM_NAME = ".video-eval-run"
# What Hydra itself writes into a run's folder before the run starts.
HYDRA_OWN = (".hydra",)
HYDRA_LOG_SUFFIX = ".log"


def check_writable_folder(path: str | Path, key: str, *, create: bool = True) -> Path:
    """A folder the run will write into: created if missing (``create``), and writable.

    Args:
        path: the folder.
        key: the config key that names it, for the message.
        create: create a missing folder (else a missing folder is refused).

    Returns:
        ``path`` as a `Path`.

    Raises:
        InputError: the path is a file, cannot be created, or does not take new files.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"config: {key}={folder} is not a folder (a file is there).")
    if not folder.exists():
        if not create:
            raise InputError(
                f"config: {key}={folder}: no such folder (looked in "
                f"{Path(os.path.abspath(folder)).parent}); create it or pass another {key}."
            )
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(
                f"config: {key}={folder}: the folder cannot be created ({exc.strerror or exc}); "
                f"pass another {key}."
            ) from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(
            f"config: {key}={folder}: the folder is not writable ({exc.strerror or exc}); "
            f"pass another {key}."
        ) from None
    return folder


def _foreign_files(folder: Path, log_name: str | None) -> list[str]:
    """Files in ``folder`` that are not Hydra's own for this run."""
    out = []
    for item in sorted(folder.iterdir()):
        own = item.name in HYDRA_OWN or item.name in (log_name, CLAIM_NAME)
        if own or item.name.startswith((".write-check", ".video-eval-claim-")):
            continue
        out.append(item.name)
    return out


def claim_output_dir(
    output_dir: Path, key: str = "hydra.run.dir", log_name: str | None = None
) -> None:
    """Make ``output_dir`` this run's folder, or refuse it when another run's files are there.

    Args:
        output_dir: the run's output folder (Hydra created it).
        key: the config key that names it, for the message.
        log_name: the name of the log file Hydra opened there for this run (not a result).

    Raises:
        InputError: the folder cannot be written, another run claimed it, or it holds other
            files (a previous run's results).
    """
    check_writable_folder(output_dir, key)
    claim = output_dir / CLAIM_NAME
    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    owner = f"{os.getpid()} {socket.gethostname()} {stamp}\n"
    # Written beside, then linked into place: the claim is never seen empty, and of two runs
    # linking at once exactly one succeeds.
    fd, draft = tempfile.mkstemp(prefix=".video-eval-claim-", dir=output_dir)
    with os.fdopen(fd, "w") as handle:
        handle.write(owner)
    try:
        for _ in range(2):
            try:
                os.link(draft, claim)
                break
            except FileExistsError:
                other = _owner(claim)
                if other is not None:
                    raise InputError(
                        f"config: {key}={output_dir} already belongs to another run (pid "
                        f"{other[0]} on {other[1]}, started {other[2]}); two runs never share "
                        f"an output folder. {_ELSEWHERE.format(key=key)}"
                    ) from None
                _refuse_foreign(output_dir, key, log_name)
                # A run that ended before writing any result (bad input, say): a stale claim.
                claim.unlink(missing_ok=True)
        else:
            raise InputError(f"config: {key}={output_dir}: another run is starting there too.")
    except OSError as exc:
        raise InputError(
            f"config: {key}={output_dir}: the folder is not writable ({exc.strerror or exc})."
        ) from None
    finally:
        os.unlink(draft)
    try:
        _refuse_foreign(output_dir, key, log_name)
    except InputError:
        claim.unlink(missing_ok=True)
        raise


_ELSEWHERE = "Pass another {key} (or leave it unset: every run then gets its own folder)."


def _refuse_foreign(output_dir: Path, key: str, log_name: str | None) -> None:
    foreign = _foreign_files(output_dir, log_name)
    if foreign:
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        raise InputError(
            f"config: {key}={output_dir} already holds files of another run "
            f"({', '.join(foreign[:5])}{more}); a run writes into a folder of its own. "
            f"{_ELSEWHERE.format(key=key)}"
        )


def _owner(claim: Path) -> tuple[int, str, str] | None:
    """(pid, host, start) of a live run's claim; None when that run is gone (or unreadable)."""
    try:
        pid_text, host, stamp = claim.read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    if host == socket.gethostname():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
    return pid, host, stamp


def check_hydra_dirs(argv: list[str]) -> None:
    """The output folder given on the command line, checked before Hydra creates it.

    ``hydra.run.dir=DIR`` (``hydra.sweep.dir=DIR`` with ``-m``) is checked by
    `check_writable_folder`; a value with an interpolation (``${now:...}``) is left to Hydra.

    Raises:
        InputError: naming the key and the folder.
    """
    for arg in argv:
        key, sep, value = arg.lstrip("+").partition("=")
        if sep and key in ("hydra.run.dir", "hydra.sweep.dir") and value and "${" not in value:
            check_writable_folder(value, key)


def unusable_output_dir(exc: OSError) -> InputError:
    """The error for an output folder Hydra could not create or write."""
    where = f" ({exc.filename})" if exc.filename else ""
    return InputError(
        f"config: hydra.run.dir: the output folder cannot be created or written{where}: "
        f"{exc.strerror or exc}; pass hydra.run.dir=FOLDER (a folder you can write)."
    )


@contextlib.contextmanager
def checked_output_folder(
    argv: list[str], entry_file: str, around: str = "entry"
) -> Iterator[None]:
    """Around a Hydra command: its output folder checked before Hydra creates it, and
    Hydra's own failure to create or write it reported as the config error it is.

    Args:
        argv: the command line (``hydra.run.dir=...`` is checked by `check_hydra_dirs`).
        entry_file: the module whose functions Hydra runs: an OSError raised inside one of
            them (but ``around``) is not Hydra's and passes unchanged.
        around: the function of ``entry_file`` that holds this context.

    Raises:
        InputError: naming ``hydra.run.dir`` and the folder.
    """
    if not set(argv[1:]) & {"--cfg", "-c", "--info", "-i", "--shell-completion", "-sc"}:
        check_hydra_dirs(argv[1:])  # (these only print: Hydra creates no folder for them)
    try:
        yield
    except (OSError, ValueError) as exc:
        # Hydra's log file that cannot be opened is a ValueError caused by the OSError.
        cause = exc if isinstance(exc, OSError) else exc.__cause__
        frames = traceback.extract_tb(exc.__traceback__)
        if not isinstance(cause, OSError) or any(
            f.filename == entry_file and f.name != around for f in frames
        ):
            raise  # not about the folder, or raised by a command body Hydra ran
        raise unusable_output_dir(cause) from None
