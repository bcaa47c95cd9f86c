"""Checking an input table's path without reading it (cheap: no pyarrow, no pandas).

The command-line edge calls this before any heavy import, so a misspelt path is refused at
once; `evaluator.io.tables.read_table` calls it too, so both give the same message.
"""

from __future__ import annotations

import glob
import os
import re
import stat
from pathlib import Path

from evaluator.errors import InputError

SUPPORTED_SUFFIXES = (".parquet", ".csv", ".jsonl")


def check_table_path(path: str | Path) -> Path:
    """The path of an input table, refused when it cannot be one.

    Args:
        path: the file; its extension selects the format.

    Returns:
        ``path`` as a `Path`.

    Raises:
        InputError: an unsupported extension, or no such file (the message names the folder
            that was searched).
    """
    path = Path(path)
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise InputError(
            f"{path}: unsupported file type '{path.suffix}'; expected one of "
            f"{', '.join(SUPPORTED_SUFFIXES)}."
        )
    if not path.is_file():
        raise InputError(not_a_file(path))
    return path


def not_a_file(path: Path) -> str:
    """Why ``path`` cannot be read as a file: missing, a link that leads nowhere, or not a
    regular file (a FIFO, a device such as /dev/zero, a socket). Never follows a loop."""
    folder = Path(os.path.abspath(path)).parent  # resolve() raises on a symlink loop
    if os.path.lexists(path) and not os.path.exists(path):
        return (
            f"{path}: not a regular file: a symbolic link that leads nowhere (a loop or a "
            f"missing target, in {folder})."
        )
    if os.path.exists(path):
        return (
            f"{path}: not a regular file ({_kind(path)}); give a "
            f"{', '.join(SUPPORTED_SUFFIXES)} file."
        )
    return f"{path}: file not found (looked in {folder})."


def _kind(path: Path) -> str:
    mode = os.stat(path).st_mode
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return name
    return "not a plain file"


_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def check_input_path(value: str, *, spark: bool = False) -> None:
    """An input table as ``data.*`` keys accept it, refused early when it cannot be one.

    A file (`check_table_path`), a directory of part files or a glob that matches something;
    with ``spark``, also any URI Spark reads (``s3a://``, ``hdfs://``, ...) and ``table:NAME``,
    which only Spark can check.

    Raises:
        InputError: as `check_table_path`, or a glob that matches nothing.
    """
    if spark and (value.startswith("table:") or _URI.match(value)):
        return
    path = Path(value)
    if path.is_dir():
        return
    if set("*?[") & set(value) and not path.exists():
        if not glob.glob(value, recursive=True):
            raise InputError(f"{path}: no file matches this pattern.")
        return
    check_table_path(path)
