"""Writing result files into the output directory all-or-nothing.

Files are written into a hidden staging folder next to their destination and moved into place
only when every one of them was written, so a failure never leaves a partial result behind.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluator.errors import InputError
from evaluator.lifecycle import checkpoint

Writer = Callable[[Path], None]


def json_ready(value: Any) -> Any:
    """Turn numpy scalars / NaN into JSON-friendly Python values (NaN -> None)."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_json(data: Mapping[str, Any]) -> Writer:
    """A writer of ``data`` as indented JSON (NaN written as null)."""

    def write(path: Path) -> None:
        path.write_text(json.dumps(json_ready(dict(data)), indent=2, sort_keys=False) + "\n")

    return write


def write_parquet(frame: pd.DataFrame) -> Writer:
    """A writer of ``frame`` as parquet (no index)."""

    def write(path: Path) -> None:
        frame.to_parquet(path, index=False)

    return write


def write_text(text: str) -> Writer:
    """A writer of a text file."""

    def write(path: Path) -> None:
        path.write_text(text)

    return write


@contextmanager
def staged_outputs(output_dir: Path) -> Iterator[Path]:
    """Yield a staging folder; on success move its contents into ``output_dir``.

    On an exception the staging folder is removed and nothing in ``output_dir`` changes.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=output_dir))
    try:
        yield staging
        for item in sorted(staging.rglob("*")):
            if item.is_file():
                target = output_dir / item.relative_to(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                item.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_all(output_dir: Path, files: Mapping[str, Writer]) -> list[Path]:
    """Write ``files`` (relative path -> writer) into ``output_dir`` all-or-nothing.

    Returns:
        The written paths, in the order given.

    Raises:
        InputError: the folder cannot be written (disk full, no permission); nothing of this
            evaluation is left in it.
    """
    try:
        with staged_outputs(output_dir) as staging:
            for rel, writer in files.items():
                checkpoint()  # Ctrl-C / SIGTERM stop here, between two files
                path = staging / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                writer(path)
    except OSError as exc:
        raise unwritable(output_dir, exc) from None
    return [output_dir / rel for rel in files]


def unwritable(output_dir: Path, exc: OSError) -> InputError:
    """The error for an output folder that cannot be written."""
    return InputError(
        f"{output_dir}: cannot write the results there ({exc.strerror or exc}); nothing of "
        f"this evaluation was left in it. Free some space (or "
        f"fix the permissions), or pass hydra.run.dir=FOLDER, and run the command again."
    )


def write_json_atomically(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON into ``path`` through a temporary file: all of it or nothing.

    Non-finite numbers are kept (as ``NaN`` / ``Infinity``, which Python's json reads back).

    Raises:
        InputError: the folder cannot be written.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(dict(data), indent=1) + "\n")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise unwritable(path.parent, exc) from None
