"""MLflow runs: create one, log a `RunRecord` into it in batched calls, end it.

This module talks to MLflow: it creates, logs into and ends runs, and `log_record` is the one
function that logs a `RunRecord`, both into a run just created (`record_run`) and into a run
cut off earlier that ``video-eval-record`` completes (`evaluator.tracking.record_later`). Its
neighbours in `evaluator.tracking` talk to MLflow too (the registry, datasets, tables, logged
models, parent runs, record-later, and `preflight.open_store`); the record types
(`evaluator.tracking.records`) and `reachability` import no MLflow.

A run is created only after the inputs are validated and the numbers computed, and it always
ends: FINISHED when everything was recorded, FAILED (with the error text in the tag
``evaluator.error``) otherwise. It is never left RUNNING. Between two MLflow calls the work
stops if Ctrl-C or SIGTERM arrived (`evaluator.lifecycle.checkpoint`); no signal lands inside
a call, so the store is never left locked and the run can be marked FAILED.

Only a failure of MLflow or the network becomes a `TrackingError` (exit status 3, "record it
later"); any other exception raised while recording is a bug and propagates unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
import requests
from mlflow.entities import DatasetInput, InputTag, Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from evaluator import __version__
from evaluator.errors import TrackingError
from evaluator.lifecycle import checkpoint
from evaluator.tracking.datasets import FileDataset
from evaluator.tracking.logged_models import (
    create_evaluation_model,
    evaluation_model_spec,
    finish_evaluation_model,
    run_model,
)
from evaluator.tracking.preflight import open_store
from evaluator.tracking.reachability import sqlite_path, ui_hint
from evaluator.tracking.records import (
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_LENGTH,
    MAX_PARAMS_TAGS_PER_BATCH,
    Destination,
    RecordedRun,
    RunDataset,
    RunRecord,
    artifact_list,
    chunks,
    save_record,
    with_record_id,
)
from evaluator.tracking.tables import LOGGED_ARTIFACTS_TAG, log_tables

# Re-exported: where a run can be viewed; the record types many callers import from here.
__all__ = ["RecordedRun", "RunRecord", "artifact_list", "ui_hint"]
# What a store or a network that fails raises (anything else raised while recording is a bug).
TRACKING_FAILURES: tuple[type[BaseException], ...] = (
    MlflowException,
    requests.RequestException,
    OSError,
    TrackingError,
)


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


def open_experiment(
    tracking_uri: str, experiment: str, artifact_location: str | None
) -> tuple[MlflowClient, str]:
    """A client of the store (a new sqlite store is created under its lock) and the id of
    ``experiment`` (created with ``artifact_location``, None = `default_artifact_location`).

    Raises:
        `TRACKING_FAILURES`, unwrapped: the caller says what it was doing.
    """
    open_store(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    location = artifact_location or default_artifact_location(tracking_uri)
    return client, get_or_create_experiment(client, experiment, location)


def mark_failed(client: MlflowClient, run_id: str, error: str) -> None:
    """End a run FAILED with ``error`` in its tag ``evaluator.error`` (best effort: the store
    may be gone, and then ``video-eval-record`` completes the run later)."""
    with contextlib.suppress(Exception):
        client.set_tag(run_id, "evaluator.error", error[:5000])
    with contextlib.suppress(Exception):
        client.set_terminated(run_id, "FAILED")


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


def record_run(
    *,
    tracking_uri: str,
    experiment: str,
    run_name: str,
    record: RunRecord,
    artifact_location: str | None = None,
    parent_run_id: str | None = None,
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

    Returns:
        The run's id and experiment id.

    Raises:
        TrackingError: the store could not be reached or refused a write; the run (if one
            was created) is marked FAILED with the error text. Any other exception (a bug,
            Ctrl-C, SIGTERM) also marks it FAILED and propagates unchanged.
    """
    checkpoint()
    try:
        client, exp_id = open_experiment(tracking_uri, experiment, artifact_location)
        tags = dict(record.tags)
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id
        run = client.create_run(exp_id, run_name=run_name, tags=tags)
    except TRACKING_FAILURES as exc:
        raise TrackingError(f"cannot start an MLflow run at {tracking_uri}: {exc}") from exc
    with ended(client, run.info.run_id, tracking_uri):
        log_record(client, run.info.run_id, record, experiment_id=exp_id)
    return RecordedRun(run.info.run_id, exp_id, tracking_uri)


@contextlib.contextmanager
def ended(client: MlflowClient, run_id: str, tracking_uri: str) -> Iterator[None]:
    """End run ``run_id`` when the block ends: FINISHED, or FAILED with the error's text.

    Raises:
        TrackingError: MLflow or the network failed in the block (the original error is its
            cause); other exceptions propagate unchanged.
    """
    try:
        yield
        checkpoint()  # a stop requested during the last call: the run is not complete
        client.set_terminated(run_id, "FINISHED")
    except BaseException as exc:
        mark_failed(client, run_id, f"{type(exc).__name__}: {exc}")
        if isinstance(exc, TRACKING_FAILURES) and not isinstance(exc, TrackingError):
            raise TrackingError(
                f"MLflow run {run_id} at {tracking_uri} could not be completed and was marked "
                f"FAILED: {type(exc).__name__}: {exc}"
            ) from exc
        raise


def log_record(
    client: MlflowClient,
    run_id: str,
    record: RunRecord,
    *,
    experiment_id: str | None = None,
    existing: Run | None = None,
) -> None:
    """Log params, metrics, artifacts, tables, the dataset input and the LoggedModel of
    ``record`` into run ``run_id``: a new run, or (``existing``) one cut off earlier.

    Of an existing run only what it lacks is added (params, metrics and curve steps, tables,
    the dataset, the LoggedModel); its tags are set again, its ``evaluator.error`` removed,
    and the artifacts uploaded again (an upload cut off may be partial; uploading a file
    again replaces it). The work stops between two calls when a stop was requested.

    Args:
        client: the store's client.
        run_id: the run.
        record: what to record.
        experiment_id: the run's experiment; needed for ``record.logged_model``.
        existing: the run as it is now, to complete it; None for a run just created.
    """
    have_params = existing.data.params if existing else {}
    have_metrics = existing.data.metrics if existing else {}
    if existing is not None:
        _log_batches(client, run_id, tags=[RunTag(k, str(v)) for k, v in record.tags.items()])
        if "evaluator.error" in existing.data.tags:
            client.delete_tag(run_id, "evaluator.error")
    link: dict[str, Any] = {}
    if record.logged_model is not None and experiment_id is not None:
        link["model_id"] = _evaluation_model(client, experiment_id, run_id, record, existing)
        if record.dataset is not None:
            link["dataset_name"] = record.dataset.name
            link["dataset_digest"] = record.dataset.digest[:32]
    params = [
        Param(k, str(v)[:MAX_PARAM_LENGTH])
        for k, v in record.params.items()
        if k not in have_params
    ]
    _log_batches(client, run_id, params=params)
    now = int(time.time() * 1000)
    metrics = [
        Metric(k, float(v), now, 0, **link)
        for k, v in record.metrics.items()
        if k not in have_metrics
    ]
    for name, points in record.stepped.items():
        logged = (
            {m.step for m in client.get_metric_history(run_id, name)}
            if name in have_metrics
            else set()
        )
        metrics.extend(
            Metric(name, float(v), now, int(s), **link) for s, v in points if int(s) not in logged
        )
    _log_batches(client, run_id, metrics=metrics)
    for local, folder in record.artifacts:
        checkpoint()
        client.log_artifact(run_id, str(local), folder)
    tables = record.tables
    if existing is not None:
        done = {t.get("path") for t in _json_list(existing.data.tags.get(LOGGED_ARTIFACTS_TAG))}
        tables = {name: frame for name, frame in tables.items() if name not in done}
    log_tables(client, run_id, tables)
    checkpoint()
    if record.dataset is not None and not _has_dataset(existing, record.dataset):
        log_dataset(client, run_id, record.dataset)


def _log_batches(
    client: MlflowClient,
    run_id: str,
    *,
    params: list[Param] | None = None,
    metrics: list[Metric] | None = None,
    tags: list[RunTag] | None = None,
) -> None:
    for chunk in chunks(params or [], MAX_PARAMS_TAGS_PER_BATCH):
        checkpoint()
        client.log_batch(run_id, params=chunk)
    for tag_chunk in chunks(tags or [], MAX_PARAMS_TAGS_PER_BATCH):
        checkpoint()
        client.log_batch(run_id, tags=tag_chunk)
    for metric_chunk in chunks(metrics or [], MAX_METRICS_PER_BATCH):
        checkpoint()
        client.log_batch(run_id, metrics=metric_chunk)


def _json_list(text: str | None) -> list[dict[str, Any]]:
    return list(json.loads(text or "[]"))


def _evaluation_model(
    client: MlflowClient, experiment_id: str, run_id: str, record: RunRecord, existing: Run | None
) -> str:
    """The id of the run's LoggedModel: created, or (a run cut off) found and finished."""
    spec = record.logged_model
    assert spec is not None
    model = None if existing is None else run_model(client, experiment_id, run_id, spec.name)
    if model is None:
        return create_evaluation_model(client, experiment_id, run_id, spec)
    if getattr(model.status, "name", str(model.status)) != "READY":
        finish_evaluation_model(client, model, run_id)
    return str(model.model_id)


def _has_dataset(existing: Run | None, dataset: RunDataset) -> bool:
    if existing is None or existing.inputs is None or not isinstance(dataset, FileDataset):
        return False
    logged = {d.dataset.digest for d in existing.inputs.dataset_inputs}
    return dataset.digest[:32] in logged


def log_dataset(client: MlflowClient, run_id: str, dataset: RunDataset) -> None:
    """Record an MLflow dataset as the run's evaluation input (metadata only, no rows)."""
    mlflow_dataset: Any = dataset.to_mlflow() if isinstance(dataset, FileDataset) else dataset
    entity = mlflow_dataset._to_mlflow_entity()
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
    except TRACKING_FAILURES as exc:
        raise TrackingError(
            f"logging {local.name} to MLflow run {run_id} at {tracking_uri} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def set_tags(tracking_uri: str, run_id: str, tags: Mapping[str, str]) -> None:
    """Set tags on an existing run in one batched call."""
    client = MlflowClient(tracking_uri=tracking_uri)
    _log_batches(client, run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def record_into_run(tracking_uri: str, run_id: str, record: RunRecord) -> None:
    """Record everything of ``record`` into a run someone else started and will end.

    ``mlflow.models.evaluate`` starts the run (or reuses the active one) and ends it, FAILED
    when an evaluator raises; this only adds tags, params, metrics, artifacts and tables.

    Raises:
        TrackingError: the store refused a write.
    """
    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        _log_batches(client, run_id, tags=[RunTag(k, str(v)) for k, v in record.tags.items()])
        log_record(client, run_id, record)
    except TRACKING_FAILURES as exc:
        raise TrackingError(
            f"MLflow run {run_id} at {tracking_uri}: recording the evaluation failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def run_name_for(cfg: DictConfig, fallback_path: str | None) -> str:
    """``run_name``, else ``<model.name>-v<model.version>`` or ``<model.name>``, else the
    stem of ``fallback_path`` (the evaluated file)."""
    if cfg.run_name:
        return str(cfg.run_name)
    if cfg.model.name:
        return f"{cfg.model.name}-v{cfg.model.version}" if cfg.model.version else cfg.model.name
    return Path(str(fallback_path)).stem


def evaluation_tags(task: str, digest: str, dataset_name: str, model: DictConfig) -> dict[str, str]:
    """The tags of every evaluation run: task, version, dataset, model.

    See docs/mlflow.md#one-poster-evaluation.
    """
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
    cfg: DictConfig,
    run_name: str,
    record: RunRecord,
    parent_run_id: str | None = None,
    *,
    output_dir: Path | None = None,
    table_files: Mapping[str, str] | None = None,
) -> RecordedRun:
    """`record_run` with the store, experiment and artifact root of ``cfg.mlflow``.

    An evaluation of a named model (``model.name``) also creates its LoggedModel
    (`evaluator.tracking.logged_models`), so the Models tab lists the version.

    With ``output_dir``, ``record.json`` is first saved there (see
    `evaluator.tracking.record_later`): when the store goes away before the run is finished,
    ``video-eval-record OUTPUT_DIR`` records the same run later.

    Args:
        cfg: the composed config (its ``mlflow`` and ``model`` groups).
        run_name: the run's display name.
        record: what to record.
        parent_run_id: the parent run (multirun), or None.
        output_dir: the folder of the result files the record's artifacts name.
        table_files: table artifact name -> parquet file in ``output_dir`` with the same frame.

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
    if output_dir is not None:
        record, _ = with_record_id(record)
        save_record(output_dir, record, destination, dict(table_files or {}))
    return record_run(
        tracking_uri=destination.tracking_uri,
        experiment=destination.experiment,
        run_name=run_name,
        record=record,
        artifact_location=destination.artifact_location,
        parent_run_id=parent_run_id,
    )
