"""Registering an evaluated poster model: the predictions-lookup pyfunc in the evaluation's model.

The evaluation created a LoggedModel named after the model (`evaluator.tracking.logged_models`);
registration logs the pyfunc flavor into that same LoggedModel and registers it, so the
registry's "Source model" and the experiment's Models tab name the model, not the mechanism.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from evaluator.errors import InputError
from evaluator.tracking.logged_models import EXTERNAL_TAG, run_model
from evaluator.tracking.mlflow_run import _tracking_uri
from evaluator.tracking.registry import (
    _client,
    _no_progress_bar,
    mlflow_call,
    quiet_model_logging,
)


@contextlib.contextmanager
def _reopened_run(tracking_uri: str, run_id: str) -> Iterator[None]:
    # log_model links the model to the active run; reopen the finished evaluation run for
    # the call and always end it FINISHED again (the evaluation itself is unaffected).
    with _tracking_uri(tracking_uri):
        mlflow.start_run(run_id=run_id)
        try:
            yield
        finally:
            mlflow.end_run("FINISHED")


def _log_into(client: MlflowClient, model: Any, local: Path, pyfunc: dict[str, Any]) -> str:
    # mlflow.pyfunc.log_model(model_id=...) would also copy every step-0 run metric onto the
    # model again, without its dataset; save the flavor into the existing model instead.
    from mlflow.models import Model

    spec = Model(
        artifact_path=model.artifact_location,
        model_uuid=model.model_id,
        run_id=model.source_run_id,
        model_id=model.model_id,
    )
    mlflow.pyfunc.save_model(path=str(local), mlflow_model=spec, **pyfunc)
    client.log_model_artifacts(model.model_id, str(local))
    if model.tags.get(EXTERNAL_TAG, "false").lower() == "true":
        client.delete_logged_model_tag(model.model_id, EXTERNAL_TAG)
    return str(model.model_id)


def register_evaluated_model(
    tracking_uri: str,
    *,
    run_id: str,
    name: str,
    predictions: pd.DataFrame,
    python_model: Any,
    predictions_artifact: str,
    expected_version: str | None = None,
) -> ModelVersion:
    """Log a pyfunc model that serves ``predictions`` into an evaluation's model and register it.

    The pyfunc goes into the LoggedModel the evaluation created (named ``name``, its metrics
    linked to the evaluation dataset: `evaluator.tracking.logged_models`), which stops being
    external; an evaluation run without one (recorded by an older version) gets a new
    LoggedModel named ``name``. The model is registered as a new version of ``name`` linked to
    the run, and the version gets the tag ``evaluation_run_id``.

    Args:
        tracking_uri: the store.
        run_id: the evaluation run.
        name: the registered model (created when missing).
        predictions: the ranked frames (``video_id``, ``rank``, ``timestamp``, ...).
        python_model: the ``mlflow.pyfunc.PythonModel`` to log (e.g.
            `evaluator.integrations.pyfunc.RankedFramesLookup`).
        predictions_artifact: the artifact key under which the model finds the predictions.
        expected_version: when given, the version number the registry must assign (the
            evaluation run's ``model.version`` tag); a different number is an error, since
            the version would not match the tags that resolve it to its evaluation.

    Returns:
        The new model version.

    Raises:
        InputError: the registry assigned another version than ``expected_version``.
        TrackingError: MLflow failed.
    """
    from mlflow.models import infer_signature

    client = _client(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "predictions.parquet"
        predictions.to_parquet(path, index=False)
        example = pd.DataFrame({"video_id": predictions["video_id"].astype(str).iloc[:1]})
        with quiet_model_logging():
            signature = infer_signature(example, predictions.iloc[:1])
        pyfunc = {
            "python_model": python_model,
            "artifacts": {predictions_artifact: str(path)},
            "signature": signature,
            "pip_requirements": ["video-evaluator", "mlflow", "pandas", "pyarrow"],
        }

        def log() -> str:
            experiment_id = client.get_run(run_id).info.experiment_id
            model = run_model(client, experiment_id, run_id, name)
            with _no_progress_bar(), quiet_model_logging():
                if model is not None:
                    return _log_into(client, model, Path(tmp) / "model", pyfunc)
                with _reopened_run(tracking_uri, run_id):
                    # An evaluation recorded before evaluations created their LoggedModel.
                    return str(mlflow.pyfunc.log_model(name=name, **pyfunc).model_id)

        model_id = mlflow_call(f"logging the model of run {run_id}", tracking_uri, log)

    def register() -> ModelVersion:
        # What mlflow.register_model does for a logged model (models:/<model_id>), through a
        # client pinned to this store.
        # The store resolves the model's source through the fluent tracking URI: point it here.
        with _tracking_uri(tracking_uri):
            try:
                client.create_registered_model(name)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            return client.create_model_version(
                name,
                source=f"models:/{model_id}",
                run_id=run_id,
                tags={"evaluation_run_id": run_id},
                model_id=model_id,
            )

    mv = mlflow_call(f"registering {name}", tracking_uri, register)
    if expected_version is not None and str(mv.version) != str(expected_version):
        raise InputError(
            f"registering the model of run {run_id} created version {mv.version} of {name!r}, "
            f"but the evaluation is tagged model.version={expected_version}; the registry "
            f"already had other versions (start from a fresh store, e.g. `make clean`)."
        )
    return mv
