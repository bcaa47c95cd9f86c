"""The project's own error types.

`InputError` is a problem with what the user gave us (a file, a column, a config value). The
command-line entry points print its message and exit with status 2, without a traceback. A
`ServiceError` (`TrackingError`: MLflow; a failed Spark job) exits 3, also without a traceback.
Any other exception is a bug (exit 4) and keeps its traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input that the user can fix: the message names the file, column and rows."""


class ServiceError(RuntimeError):
    """A service the command relies on failed: the MLflow store, the Spark cluster (exit 3).

    Neither the inputs nor a bug: run the command again once the service is back, or fix the
    service's settings; the message says which.
    """


class TrackingError(ServiceError):
    """MLflow could not record the evaluation (server unreachable, store misconfigured)."""
