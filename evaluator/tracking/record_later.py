"""Record a saved output directory later: ``video-eval-record OUTPUT_DIR``.

Every evaluation writes ``record.json`` next to its result files, before its MLflow run is
created: everything the run records (params, tags, metrics, stepped curves, the artifacts and
tables by file name, the dataset input), where (tracking URI, experiment, artifact root), and a
record id. The run carries the id as the tag ``evaluator.record_id``, so recording is
idempotent:

- no run with the id: a new run is created and recorded in full (the server was down);
- a run with the id that is not FINISHED (the server went away in the middle of recording, or
  the process was stopped): that run is completed in place; what it already holds is kept and
  only what is missing is added; it ends FINISHED;
- a FINISHED run with the id: nothing is done.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from evaluator.errors import InputError, TrackingError
from evaluator.io.outputs import write_json_atomically
from evaluator.tracking.datasets import FileDataset
from evaluator.tracking.preflight import open_store
from evaluator.tracking.reachability import absolute_uri
from evaluator.tracking.record_file import pending_artifacts, validate_record_file
from evaluator.tracking.tables import LOGGED_ARTIFACTS_TAG, log_tables

MANIFEST_NAME = "record.json"
MANIFEST_FORMAT = 1
RECORD_ID_TAG = "evaluator.record_id"


@dataclass(frozen=True)
class Destination:
    """Where a run is recorded.

    Attributes:
        tracking_uri: the tracking URI.
        experiment: the experiment name.
        artifact_location: the artifact root of a new experiment (None = the default).
        run_name: the run's display name.
        parent_run_id: the parent run (multirun), or None.
    """

    tracking_uri: str
    experiment: str
    artifact_location: str | None
    run_name: str
    parent_run_id: str | None = None


@dataclass(frozen=True)
class SavedRecord:
    """A ``record.json`` read back: the run to record and where.

    Attributes:
        record_id: the id the run carries as tag ``evaluator.record_id``.
        destination: where it is recorded.
        record: everything it records (`RunRecord`; tables read from their parquet files).
    """

    record_id: str
    destination: Destination
    record: Any


@dataclass(frozen=True)
class RecordOutcome:
    """What `record_saved` did: ``created``, ``completed`` or ``already recorded``."""

    run: Any
    action: str


def with_record_id(record: Any) -> tuple[Any, str]:
    """A copy of ``record`` tagged with a fresh record id, and the id."""
    record_id = uuid.uuid4().hex
    return replace(record, tags={**record.tags, RECORD_ID_TAG: record_id}), record_id


def table_files_of(record: Any) -> dict[str, str]:
    """Each logged table's parquet twin in the output folder (``X.json`` -> ``X.parquet``)."""
    return {name: f"{name.removesuffix('.json')}.parquet" for name in record.tables}


def save_record(
    output_dir: Path,
    record: Any,
    destination: Destination,
    table_files: dict[str, str],
    pending: Sequence[str] = (),
) -> Path:
    """Write ``record.json`` into ``output_dir`` (atomically).

    Args:
        output_dir: the folder with the result files the record's artifacts name.
        record: the `RunRecord`, tagged by `with_record_id`.
        destination: where the run is recorded.
        table_files: table artifact name -> the parquet file (relative to ``output_dir``)
            holding the same frame (``match_table.json`` -> ``match_table.parquet``).
        pending: files still being drawn (relative to ``output_dir``), recorded with the
            run when it is recorded later (`evaluator.tracking.record_file.pending_artifacts`).

    Returns:
        The manifest's path.
    """
    root = output_dir.resolve()
    dataset = record.dataset
    manifest = {
        "format": MANIFEST_FORMAT,
        "record_id": record.tags[RECORD_ID_TAG],
        "destination": {
            "tracking_uri": absolute_uri(destination.tracking_uri),
            "experiment": destination.experiment,
            "artifact_location": destination.artifact_location,
            "run_name": destination.run_name,
            "parent_run_id": destination.parent_run_id,
        },
        "params": record.params,
        "tags": record.tags,
        "metrics": record.metrics,
        "stepped": {k: [[s, v] for s, v in pts] for k, pts in record.stepped.items()},
        "artifacts": [
            [Path(local).resolve().relative_to(root).as_posix(), folder]
            for local, folder in record.artifacts
        ],
        "tables": {name: table_files[name] for name in record.tables},
        "pending": list(pending),
        "dataset": None
        if not isinstance(dataset, FileDataset)
        else {
            "path": dataset.path,
            "name": dataset.name,
            "digest": dataset.digest,
            "columns": [list(c) for c in dataset.columns],
            "spark_location": dataset.spark_location,
        },
        "logged_model": None
        if record.logged_model is None
        else {
            "name": record.logged_model.name,
            "tags": record.logged_model.tags,
            "params": record.logged_model.params,
        },
    }
    path = output_dir / MANIFEST_NAME
    write_json_atomically(path, manifest)
    return path


def load_saved_record(output_dir: Path) -> SavedRecord:
    """Read ``record.json`` of an output directory and the files it names.

    Raises:
        InputError: no manifest, a manifest that is not valid, or a file it names is missing.
    """
    from evaluator.tracking.logged_models import LoggedModelSpec
    from evaluator.tracking.mlflow_run import RunRecord

    path = output_dir / MANIFEST_NAME
    if not path.is_file():
        raise InputError(
            f"{output_dir}: no {MANIFEST_NAME} here; pass the output folder of a video-eval run "
            f"(the 'outputs:' line of its summary)."
        )
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a valid record manifest ({exc}).") from None
    validate_record_file(path, m, MANIFEST_FORMAT)
    try:
        d = m["destination"]
        destination = Destination(
            str(d["tracking_uri"]),
            str(d["experiment"]),
            d.get("artifact_location"),
            str(d["run_name"]),
            d.get("parent_run_id"),
        )
        artifacts = [(output_dir / rel, folder) for rel, folder in m["artifacts"]]
        tables_files = {str(k): output_dir / v for k, v in m["tables"].items()}
        ds = m.get("dataset")
        dataset = (
            None
            if ds is None
            else FileDataset(
                ds["path"],
                ds["name"],
                ds["digest"],
                tuple((c, t) for c, t in ds["columns"]),
                ds.get("spark_location"),
            )
        )
        lm = m.get("logged_model")
        logged_model = (
            None
            if lm is None
            else LoggedModelSpec(
                str(lm["name"]),
                {str(k): str(v) for k, v in lm["tags"].items()},
                {str(k): str(v) for k, v in lm["params"].items()},
            )
        )
        record_id = str(m["record_id"])
        params = {str(k): str(v) for k, v in m["params"].items()}
        tags = {str(k): str(v) for k, v in m["tags"].items()}
        metrics = {str(k): float(v) for k, v in m["metrics"].items()}
        stepped = {str(k): [(int(s), float(v)) for s, v in pts] for k, pts in m["stepped"].items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a valid record manifest ({exc}).") from None
    missing = [str(p) for p, _ in artifacts if not p.is_file()]
    missing += [str(p) for p in tables_files.values() if not p.is_file()]
    artifacts += pending_artifacts(output_dir, m.get("pending", []))
    if missing:
        raise InputError(
            f"{output_dir}: files named in {MANIFEST_NAME} are missing: {', '.join(missing[:5])}; "
            f"the output folder is incomplete and cannot be recorded."
        )
    tables = {name: pd.read_parquet(file) for name, file in tables_files.items()}
    record = RunRecord(params, tags, metrics, stepped, artifacts, tables, dataset, logged_model)
    return SavedRecord(record_id, destination, record)


def record_saved(
    output_dir: Path, *, tracking_uri: str | None = None, experiment: str | None = None
) -> RecordOutcome:
    """Record a saved output directory as the finished run a live run would have made.

    Args:
        output_dir: a folder with ``record.json``.
        tracking_uri: record there instead of the URI the evaluation used.
        experiment: record into this experiment instead.

    Returns:
        The run and what was done (``created``, ``completed``, ``already recorded``).

    Raises:
        InputError: the folder has no valid manifest or misses files.
        TrackingError: the store cannot be reached or refused a write; a run being completed
            is marked FAILED (run the command again to complete it).
    """
    from mlflow.tracking import MlflowClient

    from evaluator.tracking.mlflow_run import (
        RecordedRun,
        default_artifact_location,
        get_or_create_experiment,
        record_run,
    )

    saved = load_saved_record(output_dir)
    dest = replace(
        saved.destination,
        tracking_uri=tracking_uri or saved.destination.tracking_uri,
        experiment=experiment or saved.destination.experiment,
    )
    uri = dest.tracking_uri
    try:
        open_store(uri)  # a new sqlite store is created under its lock
        client = MlflowClient(tracking_uri=uri)
        exp_id = get_or_create_experiment(
            client, dest.experiment, dest.artifact_location or default_artifact_location(uri)
        )
        found = client.search_runs(
            [exp_id], filter_string=f"tags.`{RECORD_ID_TAG}` = '{saved.record_id}'"
        )
    except Exception as exc:
        raise TrackingError(f"cannot reach the MLflow store {uri}: {exc}") from exc
    finished = [r for r in found if r.info.status == "FINISHED"]
    if finished:
        return RecordOutcome(RecordedRun(finished[0].info.run_id, exp_id, uri), "already recorded")
    if not found:
        run = record_run(
            tracking_uri=uri,
            experiment=dest.experiment,
            run_name=dest.run_name,
            record=saved.record,
            artifact_location=dest.artifact_location,
            parent_run_id=dest.parent_run_id,
        )
        return RecordOutcome(run, "created")
    run_id = found[0].info.run_id
    try:
        _complete_run(client, run_id, saved.record, uri)
        client.set_terminated(run_id, "FINISHED")
    except BaseException as exc:
        _fail_quietly(client, run_id, exc)
        if not isinstance(exc, Exception):
            raise
        raise TrackingError(
            f"MLflow run {run_id} at {uri} could not be completed and was marked FAILED: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return RecordOutcome(RecordedRun(run_id, exp_id, uri), "completed")


def _fail_quietly(client: Any, run_id: str, exc: BaseException) -> None:
    # The store may be gone: then the next `video-eval-record` completes the run.
    with contextlib.suppress(Exception):
        client.set_tag(run_id, "evaluator.error", f"{type(exc).__name__}: {exc}"[:5000])
        client.set_terminated(run_id, "FAILED")


def _complete_run(client: Any, run_id: str, record: Any, uri: str) -> None:
    """Add to an unfinished run whatever of ``record`` it lacks."""
    from mlflow.entities import Metric, Param, RunTag

    from evaluator.tracking.logged_models import (
        create_evaluation_model,
        finish_evaluation_model,
        run_model,
    )
    from evaluator.tracking.mlflow_run import (
        MAX_METRICS_PER_BATCH,
        MAX_PARAM_LENGTH,
        MAX_PARAMS_TAGS_PER_BATCH,
        chunks,
        log_dataset,
    )

    run = client.get_run(run_id)
    have = run.data
    link: dict[str, Any] = {}
    if record.logged_model is not None:
        model = run_model(client, run.info.experiment_id, run_id, record.logged_model.name)
        if model is None:
            model_id = create_evaluation_model(
                client, run.info.experiment_id, run_id, record.logged_model
            )
        else:  # created before the store went away: finish it in place
            model_id = str(model.model_id)
            if getattr(model.status, "name", str(model.status)) != "READY":
                finish_evaluation_model(client, model, run_id)
        link["model_id"] = model_id
        if record.dataset is not None:
            link["dataset_name"] = record.dataset.name
            link["dataset_digest"] = record.dataset.digest[:32]
    tags = [RunTag(k, str(v)) for k, v in record.tags.items()]
    for chunk in chunks(tags, MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, tags=chunk)
    if "evaluator.error" in have.tags:
        client.delete_tag(run_id, "evaluator.error")
    params = [
        Param(k, str(v)[:MAX_PARAM_LENGTH])
        for k, v in record.params.items()
        if k not in have.params
    ]
    for chunk in chunks(params, MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, params=chunk)
    stamp = int(time.time() * 1000)
    metrics = [
        Metric(k, float(v), stamp, 0, **link)
        for k, v in record.metrics.items()
        if k not in have.metrics
    ]
    for name, points in record.stepped.items():
        logged = (
            {m.step for m in client.get_metric_history(run_id, name)}
            if name in have.metrics
            else set()
        )
        metrics.extend(
            Metric(name, float(v), stamp, int(s), **link) for s, v in points if int(s) not in logged
        )
    for chunk in chunks(metrics, MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=chunk)
    # Artifacts are uploaded again: an upload cut off by the lost server may be partial, and
    # uploading a file again replaces it.
    for local, folder in record.artifacts:
        client.log_artifact(run_id, str(local), folder)
    done = {t.get("path") for t in json.loads(have.tags.get(LOGGED_ARTIFACTS_TAG, "[]"))}
    todo = {name: frame for name, frame in record.tables.items() if name not in done}
    log_tables(client, run_id, todo)  # an upload replaces a partial file of the same name
    if record.dataset is not None:
        digest = record.dataset.digest[:32] if isinstance(record.dataset, FileDataset) else None
        logged_digests = {d.dataset.digest for d in run.inputs.dataset_inputs}
        if digest is None or digest not in logged_digests:
            log_dataset(client, run_id, record.dataset)


def record_later_hint(output_dir: Path, tracking_uri: str) -> str:
    """The one command that records a saved output directory later."""
    return f"video-eval-record {output_dir} mlflow.tracking_uri={absolute_uri(tracking_uri)}"
