"""The only code that talks to MLflow: experiments, runs, batched metrics, artifacts, tables.

A run is created only after the inputs are validated and the numbers computed, and it always
ends: FINISHED when everything was recorded, FAILED (with the error text in the tag
``evaluator.error``) otherwise. It is never left RUNNING.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from evaluator.errors import TrackingError
from evaluator.tracking.datasets import FileDataset
from evaluator.tracking.logged_models import (
    LoggedModelSpec,
    create_evaluation_model,
    evaluation_model_spec,
)
from evaluator.tracking.preflight import open_store
from evaluator.tracking.reachability import sqlite_path, ui_hint
from evaluator.tracking.record_later import Destination, save_record, with_record_id
from evaluator.tracking.tables import log_tables

MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_PARAM_LENGTH = 6000
__all__ = ["ui_hint"]  # re-exported: where a run can be viewed


def default_artifact_location(uri: str) -> str | None:
    """Artifact root for new experiments: ``<db dir>/mlartifacts`` next to a sqlite store.

    MLflow's own default is ``./mlruns`` relative to whatever directory the experiment happens
    to be created from; tying it to the database keeps a store and its artifacts together.
    For a tracking server, None lets the server decide (its ``--artifacts-destination``).
    """
    db = sqlite_path(uri)
    if db is None:
        return None
    return (db.resolve().parent / "mlartifacts").as_uri()


@dataclass
class RunRecord:
    """Everything one run records.

    Attributes:
        params: flat param name -> value (stringified; long values are cut at 6000 chars).
        tags: tag name -> value.
        metrics: metric name -> value (step 0).
        stepped: metric name -> [(step, value)] (curves such as ``recall_at_k``).
        artifacts: (local file, artifact folder or None for the root) to log.
        tables: artifact file name -> frame, logged with ``mlflow.log_table``.
        dataset: the run's input dataset: a `FileDataset`, an MLflow dataset, or None.
        logged_model: the LoggedModel to create for the run (its metrics are linked to it
            and to ``dataset``), or None.
    """

    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    stepped: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    artifacts: list[tuple[Path, str | None]] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    dataset: object | None = None
    logged_model: LoggedModelSpec | None = None


def artifact_list(files: Sequence[Path], root: Path) -> list[tuple[Path, str | None]]:
    """(file, artifact folder) pairs that mirror the files' layout under ``root``."""
    out: list[tuple[Path, str | None]] = []
    for f in files:
        folder = f.relative_to(root).parent.as_posix()
        out.append((f, None if folder == "." else folder))
    return out


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    """``items`` in consecutive slices of at most ``size`` (MLflow's batch limits)."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def get_or_create_experiment(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    """The id of experiment ``name``, creating it (with ``artifact_location``) when missing."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except mlflow.exceptions.MlflowException:
        # Another process created it between our lookup and create.
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


@contextlib.contextmanager
def _tracking_uri(uri: str) -> Iterator[None]:
    # For the fluent-only APIs (model registration): point them at our store for the call.
    # set_tracking_uri also writes $MLFLOW_TRACKING_URI (for subprocesses); put both back so
    # a later config resolution in this process does not see our value as the user's.
    previous = mlflow.get_tracking_uri()
    previous_env = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)
        if previous_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous_env


@dataclass(frozen=True)
class RecordedRun:
    """Where a run landed."""

    run_id: str
    experiment_id: str
    tracking_uri: str


def record_run(
    *,
    tracking_uri: str,
    experiment: str,
    run_name: str,
    record: RunRecord,
    artifact_location: str | None = None,
    parent_run_id: str | None = None,
    late_artifacts: Callable[[], Sequence[tuple[Path, str | None]]] | None = None,
) -> RecordedRun:
    """Create a run and record everything in a few batched calls.

    Args:
        tracking_uri: where to record (``sqlite:///...``, ``http(s)://...``).
        experiment: experiment name; created when missing.
        run_name: the run's display name.
        record: what to record.
        artifact_location: artifact root for a new experiment (None = see
            `default_artifact_location`).
        parent_run_id: makes this a nested run of that run.
        late_artifacts: called after everything else is logged; returns more files to log
            (the plots and report drawn meanwhile by a worker). Its errors fail the run.

    Returns:
        The run's id and experiment id.

    Raises:
        TrackingError: the store could not be reached or refused a write; the run (if one
            was created) is marked FAILED with the error text.
    """
    try:
        open_store(tracking_uri)  # a new sqlite store is created under its lock
        client = MlflowClient(tracking_uri=tracking_uri)
        exp_id = get_or_create_experiment(
            client, experiment, artifact_location or default_artifact_location(tracking_uri)
        )
        tags = dict(record.tags)
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id
        run = client.create_run(exp_id, run_name=run_name, tags=tags)
    except Exception as exc:
        raise TrackingError(f"cannot start an MLflow run at {tracking_uri}: {exc}") from exc
    run_id = run.info.run_id
    try:
        model_id = None
        if record.logged_model is not None:
            model_id = create_evaluation_model(client, exp_id, run_id, record.logged_model)
        log_record(client, run_id, record, tracking_uri, model_id=model_id)
        for local, folder in late_artifacts() if late_artifacts is not None else ():
            client.log_artifact(run_id, str(local), folder)
        client.set_terminated(run_id, "FINISHED")
    except BaseException as exc:
        with contextlib.suppress(Exception):
            client.set_tag(run_id, "evaluator.error", f"{type(exc).__name__}: {exc}"[:5000])
        with contextlib.suppress(Exception):
            client.set_terminated(run_id, "FAILED")
        if not isinstance(exc, Exception):
            raise
        raise TrackingError(
            f"MLflow run {run_id} at {tracking_uri} could not be completed and was marked "
            f"FAILED: {type(exc).__name__}: {exc}"
        ) from exc
    return RecordedRun(run_id, exp_id, tracking_uri)


def log_record(
    client: MlflowClient,
    run_id: str,
    record: RunRecord,
    tracking_uri: str,
    *,
    model_id: str | None = None,
) -> None:
    """Log params, metrics, artifacts, tables and the dataset input of ``record``.

    With ``model_id`` every metric is also linked to that LoggedModel and to the record's
    dataset (name and digest), as the experiment's Models tab shows them.
    """
    params = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in record.params.items()]
    for chunk in chunks(params, MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, params=chunk)
    now = int(time.time() * 1000)
    link: dict[str, Any] = {}
    if model_id is not None:
        link["model_id"] = model_id
        if record.dataset is not None:
            link["dataset_name"] = record.dataset.name  # type: ignore[attr-defined]
            link["dataset_digest"] = record.dataset.digest[:32]  # type: ignore[attr-defined]
    metrics = [Metric(k, float(v), now, 0, **link) for k, v in record.metrics.items()]
    for name, points in record.stepped.items():
        metrics.extend(Metric(name, float(v), now, int(step), **link) for step, v in points)
    for chunk in chunks(metrics, MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=chunk)
    for local, folder in record.artifacts:
        client.log_artifact(run_id, str(local), folder)
    log_tables(client, run_id, record.tables)
    if record.dataset is not None:
        log_dataset(client, run_id, record.dataset)


def log_dataset(client: MlflowClient, run_id: str, dataset: object) -> None:
    """Record an MLflow dataset as the run's evaluation input (metadata only, no rows)."""
    from mlflow.entities import DatasetInput, InputTag

    if isinstance(dataset, FileDataset):
        dataset = dataset.to_mlflow()
    entity = dataset._to_mlflow_entity()  # type: ignore[attr-defined]
    client.log_inputs(
        run_id,
        datasets=[DatasetInput(entity, tags=[InputTag("mlflow.data.context", "evaluation")])],
    )


def log_artifact(tracking_uri: str, run_id: str, local: Path, folder: str | None = None) -> None:
    """Add one file to the artifacts of an existing (possibly finished) run.

    Raises:
        TrackingError: the store refused the file.
    """
    try:
        MlflowClient(tracking_uri=tracking_uri).log_artifact(run_id, str(local), folder)
    except Exception as exc:
        raise TrackingError(
            f"logging {local.name} to MLflow run {run_id} at {tracking_uri} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def set_tags(tracking_uri: str, run_id: str, tags: Mapping[str, str]) -> None:
    """Set tags on an existing run in one batched call."""
    client = MlflowClient(tracking_uri=tracking_uri)
    items = [RunTag(k, str(v)) for k, v in tags.items()]
    for chunk in chunks(items, MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, tags=chunk)


def record_into_run(tracking_uri: str, run_id: str, record: RunRecord) -> None:
    """Record everything of ``record`` into a run someone else started and will end.

    ``mlflow.models.evaluate`` starts the run (or reuses the active one) and ends it, FAILED
    when an evaluator raises; this only adds tags, params, metrics, artifacts and tables.

    Raises:
        TrackingError: the store refused a write.
    """
    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        tags = [RunTag(k, str(v)) for k, v in record.tags.items()]
        for chunk in chunks(tags, MAX_PARAMS_TAGS_PER_BATCH):
            client.log_batch(run_id, tags=chunk)
        log_record(client, run_id, record, tracking_uri)
    except Exception as exc:
        raise TrackingError(
            f"MLflow run {run_id} at {tracking_uri}: recording the evaluation failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def run_name_for(cfg: Any, fallback_path: str | None) -> str:
    """``run_name``, else ``<model.name>-v<model.version>`` or ``<model.name>``, else the
    stem of ``fallback_path`` (the evaluated file)."""
    if cfg.run_name:
        return str(cfg.run_name)
    if cfg.model.name:
        return f"{cfg.model.name}-v{cfg.model.version}" if cfg.model.version else cfg.model.name
    return Path(str(fallback_path)).stem


def evaluation_tags(task: str, digest: str, dataset_name: str, model: Any) -> dict[str, str]:
    """The tags of every evaluation run (SPEC section 7): task, version, dataset, model."""
    from evaluator import __version__

    tags = {
        "evaluator.task": task,
        "evaluator.version": __version__,
        "dataset.digest": digest,
        "dataset.name": dataset_name,
    }
    if model.name:
        tags["model.name"] = str(model.name)
    if model.version is not None:
        tags["model.version"] = str(model.version)
    return tags


def record_evaluation(
    cfg: Any,
    run_name: str,
    record: RunRecord,
    parent_run_id: str | None = None,
    late_artifacts: Callable[[], Sequence[tuple[Path, str | None]]] | None = None,
    *,
    output_dir: Path | None = None,
    table_files: Mapping[str, str] | None = None,
    pending: Sequence[str] = (),
) -> RecordedRun:
    """`record_run` with the store, experiment and artifact root of ``cfg.mlflow``.

    An evaluation of a named model (``model.name``) also creates its LoggedModel
    (`evaluator.tracking.logged_models`), so the Models tab lists the version.

    With ``output_dir``, ``record.json`` is first saved there (see
    `evaluator.tracking.record_later`): when the store goes away before the run is finished,
    ``video-eval-record OUTPUT_DIR`` records the same run later. The files ``late_artifacts``
    returns are added to it as soon as they are known, also when the store failed first.

    Args:
        cfg: the composed config (its ``mlflow`` and ``model`` groups).
        run_name: the run's display name.
        record: what to record.
        parent_run_id: the parent run (multirun), or None.
        late_artifacts: see `record_run`.
        output_dir: the folder of the result files the record's artifacts name.
        table_files: table artifact name -> parquet file in ``output_dir`` with the same frame.
        pending: the files ``late_artifacts`` will draw (relative to ``output_dir``): listed in
            ``record.json`` until they are drawn, so that a run stopped before recording them
            is recorded later with them or refused.

    Raises:
        TrackingError: as `record_run`.
    """
    if record.logged_model is None:
        spec = evaluation_model_spec(cfg.model.name, record.tags, record.params)
        record = dataclasses.replace(record, logged_model=spec)
    destination = Destination(
        str(cfg.mlflow.tracking_uri),
        str(cfg.mlflow.experiment),
        cfg.mlflow.artifact_location,
        run_name,
        parent_run_id,
    )
    late = late_artifacts
    got: list[tuple[Path, str | None]] | None = None
    if output_dir is not None:
        record, _ = with_record_id(record)
        tables = dict(table_files or {})
        save_record(output_dir, record, destination, tables, pending)
        if late_artifacts is not None:

            def late() -> Sequence[tuple[Path, str | None]]:
                nonlocal got
                got = list(late_artifacts())
                everything = dataclasses.replace(record, artifacts=[*record.artifacts, *got])
                save_record(output_dir, everything, destination, tables)
                return got

    try:
        return record_run(
            late_artifacts=late,
            tracking_uri=destination.tracking_uri,
            experiment=destination.experiment,
            run_name=run_name,
            record=record,
            artifact_location=destination.artifact_location,
            parent_run_id=parent_run_id,
        )
    except TrackingError:
        if late is not late_artifacts and got is None:
            # The store failed before the drawn files were listed: list them now (local work)
            # so that `video-eval-record` records them too.
            with contextlib.suppress(Exception):
                late()  # type: ignore[misc]
        raise


def warm_store(tracking_uri: str) -> Callable[[], None]:
    """Open an existing sqlite store in a background thread while the files are being read.

    Opening a SQLAlchemy store checks its schema (about a second); doing it while the inputs are
    read and scored hides that time. Only an existing database is opened, so bad input still
    leaves no new store behind. Errors are left for `record_run` to report.

    Returns:
        A function that waits for the background work (call it before recording).
    """
    db = sqlite_path(tracking_uri)
    if db is None or not db.is_file():
        return lambda: None

    def connect() -> None:
        with contextlib.suppress(Exception):
            MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name("Default")

    thread = threading.Thread(target=connect, name="mlflow-store-warmup", daemon=True)
    thread.start()
    return thread.join
