"""``video-eval-register``: register evaluated poster models, linked to their evaluations.

For each version: find its latest finished evaluation run (run tags ``model.name`` /
``model.version``), read the predictions file the run evaluated (param
``data.predictions_resolved``), log it as a `evaluator.integrations.pyfunc.RankedFramesLookup`
pyfunc and register it as that version. A version that already exists is kept and only its
``evaluation_run_id`` tag is brought up to date.

This module talks to MLflow: the evaluation created a LoggedModel named after the model
(`evaluator.tracking.logged_models`); `register_evaluated_model` logs the pyfunc flavor into
that same LoggedModel and registers it, so the registry's "Source model" and the experiment's
Models tab name the model, not the mechanism.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from evaluator.errors import InputError
from evaluator.io.poster import load_table
from evaluator.lifecycle import checkpoint
from evaluator.tracking.logged_models import EXTERNAL_TAG, run_model
from evaluator.tracking.mlflow_run import _tracking_uri
from evaluator.tracking.registry import (
    _client,
    _no_progress_bar,
    find_model_version,
    latest_evaluation_run,
    mlflow_call,
    quiet_model_logging,
    set_alias,
    set_version_tags,
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


@dataclass(frozen=True)
class Registered:
    """One registered version and the evaluation run it is linked to."""

    name: str
    version: str
    run_id: str
    created: bool


def ranked_predictions(path: str) -> pd.DataFrame:
    """The predictions file as ranked frames: ``video_id``, ``rank``, ``timestamp``, others.

    Raises:
        InputError: the file is missing or invalid (same checks as ``video-eval``).
    """
    table = load_table(path, role="predictions", need_embeddings=False)
    frame = table.frame.drop(columns=[c for c in ("rank",) if c in table.frame.columns])
    frame = frame.assign(video_id=table.video_id, rank=table.rank, timestamp=table.timestamp)
    front = ["video_id", "rank", "timestamp"]
    frame = frame[front + [c for c in frame.columns if c not in front]]
    return frame.sort_values(["video_id", "rank"], kind="stable").reset_index(drop=True)


def register_poster_versions(
    tracking_uri: str,
    name: str,
    versions: Sequence[str],
    *,
    champion: str | None = None,
    champion_alias: str = "champion",
) -> list[Registered]:
    """Register each version of ``name`` from its evaluation run; optionally set the champion.

    Versions are registered in the order given, and the registry must number them as the
    evaluations are tagged (a new model: 1, 2, ...).

    Raises:
        InputError: a version without a finished evaluation run, a predictions file that
            cannot be read, or a registry that numbers the new version differently.
        TrackingError: MLflow failed.
    """
    out = []
    for version in (str(v) for v in versions):
        checkpoint()  # Ctrl-C / SIGTERM stop here, between two versions
        run = latest_evaluation_run(tracking_uri, name, version)
        if run is None:
            raise InputError(
                f"{name} version {version} has no finished evaluation run at {tracking_uri}; "
                f"evaluate it first: video-eval ... model.name={name} model.version={version}."
            )
        if run.data.tags.get("evaluator.task") != "poster":
            raise InputError(
                f"run {run.info.run_id} of {name} v{version} is not a poster evaluation."
            )
        run_id = run.info.run_id
        if find_model_version(tracking_uri, name, version) is not None:
            set_version_tags(tracking_uri, name, version, {"evaluation_run_id": run_id})
            out.append(Registered(name, version, run_id, created=False))
            continue
        params = run.data.params
        predictions = params.get("data.predictions_resolved") or params.get("data.predictions")
        if not predictions:
            raise InputError(f"run {run_id} has no param data.predictions to register.")
        # Imported here: defining the pyfunc class makes MLflow warn about its untyped predict.
        with quiet_model_logging():
            from evaluator.integrations.pyfunc import PREDICTIONS_ARTIFACT, RankedFramesLookup

        register_evaluated_model(
            tracking_uri,
            run_id=run_id,
            name=name,
            predictions=ranked_predictions(predictions),
            python_model=RankedFramesLookup(),
            predictions_artifact=PREDICTIONS_ARTIFACT,
            expected_version=version,
        )
        out.append(Registered(name, version, run_id, created=True))
    if champion is not None:
        set_alias(tracking_uri, name, champion_alias, str(champion))
    return out


def run_register(cfg: Any) -> list[Registered]:
    """``video-eval-register model.name=NAME model.version=V``: register one evaluated version.

    Raises:
        InputError: a missing model.name / model.version, or the errors of
            `register_poster_versions`.
        TrackingError: MLflow failed.
    """
    values = {}
    for key in ("name", "version"):
        value = cfg.model.get(key)
        if value is None or not str(value).strip():
            raise InputError(
                f"config: model.{key} is required: video-eval-register model.name=NAME "
                f"model.version=V."
            )
        values[key] = str(value).strip()
    return register_poster_versions(
        str(cfg.mlflow.tracking_uri), values["name"], [values["version"]]
    )


def format_registered(done: Sequence[Registered], tracking_uri: str) -> str:
    """One line per version: registered or already registered, and its evaluation run."""
    return "\n".join(
        f"video-eval-register: {r.name} version {r.version} "
        f"{'registered' if r.created else 'already registered'}, evaluation run {r.run_id} "
        f"({tracking_uri})"
        for r in done
    )
