"""Checking an input table's path without reading it (cheap: no pyarrow, no pandas).

The command-line edge calls this before any heavy import, so a misspelt path is refused at
once; `evaluator.io.tables.read_table` calls it too, so both give the same message.
"""

from __future__ import annotations

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
        raise InputError(f"{path}: file not found (looked in {path.resolve().parent}).")
    return path
