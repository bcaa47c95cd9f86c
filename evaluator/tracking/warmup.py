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
    """Import MLflow and open (or create) the tracking store in a background thread.

    A sqlite store that did not exist is created in the background too; if the evaluation
    then fails before anything is recorded, `discard` removes it again, so bad input still
    leaves no new store behind.
    """

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        db = _sqlite_file(tracking_uri)
        self._created = db if db is not None and not db.exists() else None
        self._thread = threading.Thread(target=self._run, name="mlflow-warmup", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # Errors are left for the recording step to report (with the run marked FAILED).
        with contextlib.suppress(Exception):
            from mlflow.tracking import MlflowClient

            db = _sqlite_file(self.tracking_uri)
            if db is not None:
                db.parent.mkdir(parents=True, exist_ok=True)
                MlflowClient(tracking_uri=self.tracking_uri).get_experiment_by_name("Default")

    def wait(self) -> None:
        """Block until the warm-up is done (call before recording)."""
        self._thread.join()

    def discard(self) -> None:
        """Remove a sqlite store this warm-up created (the evaluation failed before recording)."""
        self._thread.join()
        if self._created is not None:
            with contextlib.suppress(OSError):
                self._created.unlink()
