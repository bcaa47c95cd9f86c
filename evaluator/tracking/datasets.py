"""Evaluation sets as MLflow dataset inputs: source, digest and schema, never the rows.

`FileDataset` imports no MLflow (it is part of a saved ``record.json``); the functions that
build MLflow's dataset objects import MLflow when called and never contact a store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def local_source(path: str) -> Any:
    """MLflow's dataset source for a local file (its class is generated at import time)."""
    from mlflow.data.dataset_source_registry import get_registered_sources

    cls: Any = next(
        s
        for s in get_registered_sources()
        if getattr(s, "__name__", "") == "LocalArtifactDatasetSource"
    )
    return cls(path)


def spark_source(location: str) -> Any:
    """MLflow's dataset source for what Spark read: ``table:NAME`` or a URI / folder."""
    from mlflow.data.spark_dataset_source import SparkDatasetSource

    if location.startswith("table:"):
        return SparkDatasetSource(table_name=location[len("table:") :])
    return SparkDatasetSource(path=location)


def file_dataset(
    path: Path,
    name: str,
    digest: str,
    columns: Sequence[tuple[str, str]],
    *,
    spark_location: str | None = None,
) -> Any:
    """An MLflow `MetaDataset` describing a file: no rows (or embeddings) are copied.

    Args:
        path: the evaluation set's file.
        name: the dataset name shown in the UI.
        digest: the content digest (the first 32 characters are used, MLflow's limit is 36).
        columns: (name, MLflow type) pairs for the schema, e.g. ("video_id", "string").
        spark_location: with engine=spark, the source string Spark read (a table, a URI or a
            folder of part files); it becomes the dataset's source.
    """
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.types.schema import ColSpec, Schema, TensorSpec

    specs: list[ColSpec | TensorSpec] = [ColSpec(kind, col) for col, kind in columns]
    # MetaDataset implements `profile` as a property; mypy reads the abstract declaration.
    return MetaDataset(  # type: ignore[abstract]
        source=local_source(str(path.resolve()))
        if spark_location is None
        else spark_source(spark_location),
        name=name,
        digest=digest[:32],
        schema=Schema(specs),
    )


@dataclass(frozen=True)
class FileDataset:
    """What `file_dataset` needs, as plain values (it can be saved and rebuilt later).

    Attributes:
        path: the evaluation set's file (absolute).
        name: the dataset name shown in the UI.
        digest: the content digest.
        columns: (name, MLflow type) pairs of the schema.
        spark_location: what Spark read (engine=spark), the dataset's source; None for a file.
    """

    path: str
    name: str
    digest: str
    columns: tuple[tuple[str, str], ...]
    spark_location: str | None = None

    @classmethod
    def describe(
        cls,
        path: Path,
        name: str,
        digest: str,
        columns: Sequence[tuple[str, str]],
        *,
        spark_location: str | None = None,
    ) -> FileDataset:
        """The description of a file (its path resolved) or of what Spark read."""
        cols = tuple((str(c), str(t)) for c, t in columns)
        return cls(str(path.resolve()), name, digest, cols, spark_location)

    def to_mlflow(self) -> Any:
        """The MLflow `MetaDataset` (imports MLflow)."""
        return file_dataset(
            Path(self.path),
            self.name,
            self.digest,
            self.columns,
            spark_location=self.spark_location,
        )
