"""The LoggedModel of an evaluation: the experiment's Models tab lists one per evaluated version.

An evaluation of a named model (``model.name``, ``model.version``) creates a LoggedModel named
``model.name`` in the evaluation's experiment, tagged with ``model.version``, the task and the
dataset digest, with the run as its source. Every metric of the run is linked to it and to the
evaluation dataset (``Metric.model_id`` / ``dataset_name`` / ``dataset_digest``), so the Models
tab shows v1 and v2 of a model side by side with their ``recall_at_*`` columns under the expert
set they were measured on, registered or not. The model is "external" (its code lives outside
MLflow) until registration logs the predictions-lookup pyfunc into the same LoggedModel.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from evaluator.tracking.records import LoggedModelSpec

# Run tags copied onto the LoggedModel (they tell the versions apart in the Models tab).
MODEL_TAGS = ("model.name", "model.version", "evaluator.task", "dataset.digest", "dataset.name")
# Run params that describe the measurement (the settings a multirun varies).
MODEL_PARAM_PREFIXES = ("matching.", "metrics.", "episode.")
EXTERNAL_TAG = "mlflow.model.isExternal"


def evaluation_model_spec(
    model_name: str | None, tags: Mapping[str, str], params: Mapping[str, str]
) -> LoggedModelSpec | None:
    """The LoggedModel of an evaluation of ``model_name``; None for an unnamed model.

    Args:
        model_name: ``model.name`` of the evaluation (None or "" = no model named).
        tags: the evaluation run's tags (the ones in `MODEL_TAGS` are copied).
        params: the evaluation run's params (the ones under `MODEL_PARAM_PREFIXES` are copied).
    """
    if not model_name:
        return None
    return LoggedModelSpec(
        name=str(model_name),
        tags={k: str(tags[k]) for k in MODEL_TAGS if tags.get(k)},
        params={k: str(v) for k, v in params.items() if k.startswith(MODEL_PARAM_PREFIXES)},
    )


def create_evaluation_model(
    client: MlflowClient, experiment_id: str, run_id: str, spec: LoggedModelSpec
) -> str:
    """Create the READY external LoggedModel of ``spec`` for run ``run_id``; returns its id.

    The model gets an ``MLmodel`` file marking it external (what ``mlflow.create_external_model``
    writes), so it can be registered as it is; the run lists it as its output (step 0).
    """
    model = client.create_logged_model(
        experiment_id,
        name=spec.name,
        source_run_id=run_id,
        tags={**spec.tags, EXTERNAL_TAG: "true"},
        params=spec.params or None,
    )
    return finish_evaluation_model(client, model, run_id)


def finish_evaluation_model(client: MlflowClient, model: Any, run_id: str) -> str:
    """Write the external ``MLmodel`` of ``model``, mark it READY and list it as the run's
    output; returns its id (also completes a model whose creation was cut off)."""
    from mlflow.entities import LoggedModelOutput
    from mlflow.models.utils import get_external_mlflow_model_spec

    with tempfile.TemporaryDirectory() as tmp:
        get_external_mlflow_model_spec(model).save(str(Path(tmp) / "MLmodel"))
        client.log_model_artifacts(model.model_id, tmp)
    client.finalize_logged_model(model.model_id, "READY")
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
    return str(model.model_id)


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def run_model(client: MlflowClient, experiment_id: str, run_id: str, name: str) -> Any | None:
    """The LoggedModel named ``name`` that run ``run_id`` created, or None (an older run)."""
    found = client.search_logged_models(
        experiment_ids=[experiment_id],
        filter_string=f"source_run_id = '{run_id}' AND name = '{_escaped(name)}'",
        max_results=10,
    )
    return found[0] if found else None
