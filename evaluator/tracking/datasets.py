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


@dataclass(frozen=True)
class FileDataset:
    """An evaluation set described by plain values (saved with a run to record later).

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
        """The MLflow `MetaDataset` describing the file (imports MLflow): no rows (or
        embeddings) are copied; the digest is cut to MLflow's limit (the first 32
        characters)."""
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.types.schema import ColSpec, Schema, TensorSpec

        specs: list[ColSpec | TensorSpec] = [ColSpec(kind, col) for col, kind in self.columns]
        source = (
            local_source(str(Path(self.path).resolve()))
            if self.spark_location is None
            else spark_source(self.spark_location)
        )
        # MetaDataset implements `profile` as a property; mypy reads the abstract declaration.
        return MetaDataset(  # type: ignore[abstract]
            source=source, name=self.name, digest=self.digest[:32], schema=Schema(specs)
        )
