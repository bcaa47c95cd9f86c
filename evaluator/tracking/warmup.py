"""MLflow work that does not depend on the numbers, started while the inputs are read.

Importing MLflow (about a second) and opening a sqlite store (its schema check, or the table
migrations of a new store: a few seconds) happen in a background thread while the engine
reads and scores; the run itself is still created only after the numbers exist. This module
imports nothing from MLflow itself, so starting the warm-up costs nothing up front.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path


def _sqlite_file(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


class Warmup:
    """Import MLflow and open an existing tracking store in a background thread.

    A sqlite store that does not exist yet is left for the recording step to create (under
    its creation lock, `evaluator.tracking.preflight.open_store`): created here, it would have
    to be removed again when the evaluation fails, under another process that may have
    started to use it. So bad input leaves no new store behind.
    """

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._thread = threading.Thread(target=self._run, name="mlflow-warmup", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # Errors are left for the recording step to report (with the run marked FAILED).
        with contextlib.suppress(Exception):
            import mlflow.tracking  # noqa: F401  (the import itself is the slow part)

            from evaluator.tracking.preflight import open_store

            db = _sqlite_file(self.tracking_uri)
            if db is not None and db.is_file():
                open_store(self.tracking_uri)

    def wait(self) -> None:
        """Block until the warm-up is done (call before recording)."""
        self._thread.join()

    def discard(self) -> None:
        """The evaluation failed before recording: wait for the warm-up (it created nothing)."""
        self._thread.join()
