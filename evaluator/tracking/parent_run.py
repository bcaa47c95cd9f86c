"""Parent runs that group a multirun's evaluations, and reading their children back.

This module talks to MLflow: it creates the parent run, reads its children and logs the
multirun's comparison into the parent with `evaluator.tracking.mlflow_run.log_record`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from mlflow.tracking import MlflowClient

from evaluator.errors import TrackingError
from evaluator.tracking.mlflow_run import (
    TRACKING_FAILURES,
    RunRecord,
    log_record,
    mark_failed,
    open_experiment,
)


@dataclass(frozen=True)
class ChildRun:
    """One evaluation of a multirun, as recorded."""

    run_id: str
    run_name: str
    status: str
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]
    curves: dict[str, list[tuple[int, float]]]


def start_parent_run(
    tracking_uri: str,
    experiment: str,
    run_name: str,
    tags: dict[str, str],
    artifact_location: str | None = None,
) -> tuple[str, str]:
    """Create the parent run (left RUNNING until `finish_parent_run`); returns (run id, exp id)."""
    try:
        client, exp_id = open_experiment(tracking_uri, experiment, artifact_location)
        run = client.create_run(exp_id, run_name=run_name, tags=tags)
    except TRACKING_FAILURES as exc:
        raise TrackingError(f"cannot start the parent MLflow run at {tracking_uri}: {exc}") from exc
    return run.info.run_id, exp_id


def child_runs(
    tracking_uri: str, experiment_id: str, parent_run_id: str, curve_names: tuple[str, ...] = ()
) -> list[ChildRun]:
    """The finished and failed children of a parent run, oldest first, with stepped curves."""
    client = MlflowClient(tracking_uri=tracking_uri)
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
        order_by=["attributes.start_time ASC"],
        max_results=10_000,
    )
    out = []
    for r in runs:
        curves = {}
        for name in curve_names:
            if name in r.data.metrics:
                hist = client.get_metric_history(r.info.run_id, name)
                curves[name] = sorted((m.step, m.value) for m in hist)
        out.append(
            ChildRun(
                r.info.run_id,
                r.info.run_name or "",
                r.info.status,
                dict(r.data.metrics),
                dict(r.data.params),
                dict(r.data.tags),
                curves,
            )
        )
    return out


def finish_parent_run(tracking_uri: str, run_id: str, record: RunRecord, *, failed: bool) -> None:
    """Log the comparison on the parent run and end it (FAILED when ``failed``).

    Raises:
        TrackingError: the store refused a write; the parent is marked FAILED. Any other
            exception (a bug, a stop request) also marks it FAILED and propagates unchanged.
    """
    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        log_record(client, run_id, record)
        client.set_terminated(run_id, "FAILED" if failed else "FINISHED")
    except BaseException as exc:
        with contextlib.suppress(Exception):
            client.set_terminated(run_id, "FAILED")
        if isinstance(exc, TRACKING_FAILURES):
            raise TrackingError(f"could not complete the parent run {run_id}: {exc}") from exc
        raise


def fail_parent_run(tracking_uri: str, run_id: str, message: str) -> None:
    """End a parent run FAILED with the error text (best effort)."""
    mark_failed(MlflowClient(tracking_uri=tracking_uri), run_id, message)
