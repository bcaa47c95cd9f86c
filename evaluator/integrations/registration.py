"""Register evaluated poster models in the MLflow model registry, linked to their evaluations.

For each version: find its latest finished evaluation run (run tags ``model.name`` /
``model.version``), read the predictions file the run evaluated (param
``data.predictions_resolved``), log it as a `evaluator.integrations.pyfunc.RankedFramesLookup`
pyfunc inside that run and register it as that version. A version that already exists is kept
and only its ``evaluation_run_id`` tag is brought up to date.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from evaluator.errors import InputError
from evaluator.io.poster import load_table
from evaluator.lifecycle import checkpoint
from evaluator.tracking.register import register_evaluated_model
from evaluator.tracking.registry import (
    find_model_version,
    latest_evaluation_run,
    quiet_model_logging,
    set_alias,
    set_version_tags,
)


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
