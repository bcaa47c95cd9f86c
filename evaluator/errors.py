"""The project's own error types.

`InputError` is a problem with what the user gave us (a file, a column, a config value). The
command-line entry points print its message and exit with status 2, without a traceback; any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input that the user can fix: the message names the file, column and rows."""


class TrackingError(RuntimeError):
    """MLflow could not record the evaluation (server unreachable, store misconfigured)."""
