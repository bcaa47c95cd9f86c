"""Is the tracking store there? A short, bounded check before any work starts.

MLflow's client retries a server that does not answer for minutes (seven retries with
exponential backoff); a user who mistyped the port should learn that in seconds, before the
inputs are read. This module imports no MLflow: the command-line edge calls it first.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from evaluator.errors import TrackingError

PROBE_TIMEOUT_S = 3.0


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working directory), or None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :])


def absolute_uri(uri: str) -> str:
    """``uri`` with a relative sqlite path made absolute (it then names the same store from
    any working directory); other URIs unchanged."""
    db = sqlite_path(uri)
    return uri if db is None else f"sqlite:///{db.resolve()}"


def is_server(uri: str) -> bool:
    """Whether ``uri`` names a tracking server (http or https)."""
    return urlparse(uri).scheme in ("http", "https")


def _http_status(url: str, timeout_s: float) -> int:
    """The HTTP status ``url`` answers with; an error status (401 behind authentication) is an
    answer too. Raises OSError / ValueError when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def probe_tracking_uri(uri: str, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """Check that the tracking store answers, within ``timeout_s`` seconds.

    A server must answer an HTTP request (any status: a server behind authentication answers
    401 and is there); a sqlite store's folder must exist (the file itself is created on first
    use). Other stores (databricks, ...) are not probed.

    Args:
        uri: the tracking URI.
        timeout_s: the most seconds the check waits.

    Returns:
        One line saying what answered, or None when there is nothing to say (a local store).

    Raises:
        TrackingError: the server does not answer, or the store's folder does not exist; the
            message says what to do.
    """
    db = sqlite_path(uri)
    if db is not None:
        folder = db.resolve().parent
        if not folder.is_dir():
            raise TrackingError(
                f"the folder of the MLflow store {uri} does not exist ({folder}); create it or "
                f"pass mlflow.tracking_uri=sqlite:///mlflow.db (a store in this folder)."
            )
        return None
    if not is_server(uri):
        return None
    url = f"{uri.rstrip('/')}/health"
    start = time.monotonic()
    try:
        _http_status(url, timeout_s)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(
            f"the MLflow tracking server {uri} does not answer ({reason}; checked for "
            f"{time.monotonic() - start:.1f} s); nothing was evaluated. Start the server, fix "
            f"mlflow.tracking_uri (or $MLFLOW_TRACKING_URI), or pass "
            f"mlflow.tracking_uri=sqlite:///mlflow.db to record in a local store."
        ) from None
    return f"MLflow tracking server {uri} answers ({1000 * (time.monotonic() - start):.0f} ms)."


def ui_hint(uri: str, experiment_id: str, run_id: str) -> str:
    """How to look at a run: the `mlflow ui` command for a local store, the URL for a server."""
    path = f"#/experiments/{experiment_id}/runs/{run_id}"
    if is_server(uri):
        return f"{uri.rstrip('/')}/{path}"
    return f"mlflow ui --backend-store-uri {uri}   then open http://127.0.0.1:5000/{path}"
