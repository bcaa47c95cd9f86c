"""What a run records and where, and its saved copy ``record.json``; no MLflow here.

`RunRecord` is everything one run records; `Destination` where; `RecordedRun` where it landed.
Every evaluation saves its record as ``record.json`` next to its result files before its
MLflow run is created (`save_record`), so ``video-eval-record OUTPUT_DIR``
(`evaluator.tracking.record_later`) can record the same run later. The run carries the
record id as the tag ``evaluator.record_id``, which makes recording it again idempotent.

MLflow's limits on one ``log_batch`` call are here too (`chunks` cuts lists to them). This
module imports no MLflow (nor do the modules it imports): `evaluator.tracking.mlflow_run`
logs a record into a run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol, TypeVar

import pandas as pd

from evaluator.io.outputs import write_json_atomically
from evaluator.tracking.datasets import FileDataset
from evaluator.tracking.reachability import absolute_uri

MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_PARAM_LENGTH = 6000
MANIFEST_NAME = "record.json"
MANIFEST_FORMAT = 1
RECORD_ID_TAG = "evaluator.record_id"

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size`` (MLflow's batch limits)."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


class RunDataset(Protocol):
    """A run's input dataset: a `FileDataset`, or an MLflow dataset (the
    ``mlflow.models.evaluate`` plugin) logged as it is."""

    @property
    def name(self) -> str:
        """The dataset's name."""
        ...

    @property
    def digest(self) -> str:
        """The dataset's digest (its first 32 characters identify it in MLflow)."""
        ...


@dataclass(frozen=True)
class LoggedModelSpec:
    """What the evaluation's LoggedModel is called and carries.

    Attributes:
        name: the LoggedModel name (the evaluated model's ``model.name``).
        tags: tags of the LoggedModel (``model.version``, ...).
        params: params of the LoggedModel (the matching / metric settings).
    """

    name: str
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class RunRecord:
    """Everything one run records.

    Attributes:
        params: flat param name -> value (stringified; long values are cut at 6000 chars).
        tags: tag name -> value.
        metrics: metric name -> value (step 0).
        stepped: metric name -> [(step, value)] (curves such as ``recall_at_k``).
        artifacts: (local file, artifact folder or None for the root) to log.
        tables: artifact file name -> frame, logged as MLflow tables.
        dataset: the run's input dataset: a `FileDataset`, an MLflow dataset (the
            ``mlflow.models.evaluate`` plugin), or None.
        logged_model: the LoggedModel to create for the run (its metrics are linked to it
            and to ``dataset``), or None.
    """

    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    stepped: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    artifacts: list[tuple[Path, str | None]] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    dataset: RunDataset | None = None
    logged_model: LoggedModelSpec | None = None


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
class RecordedRun:
    """Where a run landed."""

    run_id: str
    experiment_id: str
    tracking_uri: str


def artifact_list(files: Sequence[Path], root: Path) -> list[tuple[Path, str | None]]:
    """(file, artifact folder) pairs that mirror the files' layout under ``root``."""
    out: list[tuple[Path, str | None]] = []
    for f in files:
        folder = f.relative_to(root).parent.as_posix()
        out.append((f, None if folder == "." else folder))
    return out


def with_record_id(record: RunRecord) -> tuple[RunRecord, str]:
    """A copy of ``record`` tagged with a fresh record id, and the id."""
    record_id = uuid.uuid4().hex
    return replace(record, tags={**record.tags, RECORD_ID_TAG: record_id}), record_id


def table_files_of(record: RunRecord) -> dict[str, str]:
    """Each logged table's parquet twin in the output folder (``X.json`` -> ``X.parquet``)."""
    return {name: f"{name.removesuffix('.json')}.parquet" for name in record.tables}


def save_record(
    output_dir: Path, record: RunRecord, destination: Destination, table_files: dict[str, str]
) -> Path:
    """Write ``record.json`` into ``output_dir`` (atomically).

    Args:
        output_dir: the folder with the result files the record's artifacts name.
        record: the `RunRecord`, tagged by `with_record_id`.
        destination: where the run is recorded.
        table_files: table artifact name -> the parquet file (relative to ``output_dir``)
            holding the same frame (``match_table.json`` -> ``match_table.parquet``).

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


def record_later_hint(output_dir: Path, tracking_uri: str) -> str:
    """The one command that records a saved output directory later."""
    return f"video-eval-record {output_dir} mlflow.tracking_uri={absolute_uri(tracking_uri)}"
