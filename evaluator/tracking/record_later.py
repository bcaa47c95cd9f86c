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

This module talks to MLflow: a new run is recorded by `evaluator.tracking.mlflow_run.record_run`
and a cut-off one completed by the same `log_record` a live run uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from evaluator.errors import InputError, TrackingError
from evaluator.tracking.datasets import FileDataset
from evaluator.tracking.mlflow_run import (
    TRACKING_FAILURES,
    ended,
    log_record,
    open_experiment,
    record_run,
)
from evaluator.tracking.record_file import validate_record_file
from evaluator.tracking.records import (
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    RECORD_ID_TAG,
    Destination,
    LoggedModelSpec,
    RecordedRun,
    RunRecord,
)


@dataclass(frozen=True)
class SavedRecord:
    """A ``record.json`` read back: the run to record and where.

    Attributes:
        record_id: the id the run carries as tag ``evaluator.record_id``.
        destination: where it is recorded.
        record: everything it records (tables read from their parquet files).
    """

    record_id: str
    destination: Destination
    record: RunRecord


@dataclass(frozen=True)
class RecordOutcome:
    """What `record_saved` did: ``created``, ``completed`` or ``already recorded``."""

    run: RecordedRun
    action: str


def load_saved_record(output_dir: Path) -> SavedRecord:
    """Read ``record.json`` of an output directory and the files it names.

    Raises:
        InputError: no manifest, a manifest that is not valid, or a file it names is missing.
    """
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
    saved = load_saved_record(output_dir)
    dest = replace(
        saved.destination,
        tracking_uri=tracking_uri or saved.destination.tracking_uri,
        experiment=experiment or saved.destination.experiment,
    )
    uri = dest.tracking_uri
    try:
        client, exp_id = open_experiment(uri, dest.experiment, dest.artifact_location)
        found = client.search_runs(
            [exp_id], filter_string=f"tags.`{RECORD_ID_TAG}` = '{saved.record_id}'"
        )
    except TRACKING_FAILURES as exc:
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
    with ended(client, run_id, uri):
        existing = client.get_run(run_id)
        log_record(client, run_id, saved.record, experiment_id=exp_id, existing=existing)
    return RecordOutcome(RecordedRun(run_id, exp_id, uri), "completed")
