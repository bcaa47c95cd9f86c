"""Reading evaluations back from MLflow and the model registry: references, artifacts, aliases;
and the registry writes of the commands (version tags, descriptions, aliases).

A reference (REF) names one evaluation run:

- an MLflow run id;
- ``models:/NAME/VERSION``: version VERSION of the registered model NAME;
- ``models:/NAME@ALIAS``: the version that alias points to.

A model reference resolves to that version's latest FINISHED evaluation run, found through the
run tags ``model.name`` / ``model.version`` that ``video-eval model.name=... model.version=...``
records, in any active experiment of the store.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from mlflow.entities import ViewType
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from evaluator.errors import InputError, TrackingError

T = TypeVar("T")

# Run kinds that are not evaluations (they carry evaluator.kind).
NOT_EVALUATIONS = ("comparison", "promotion", "multirun")
_MODEL_REF = re.compile(r"models:/(?P<name>[^/@]+)(?:/(?P<version>[0-9]+)|@(?P<alias>[^/@]+))")
_USER_ERRORS = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


@dataclass(frozen=True)
class ModelRef:
    """A parsed ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``."""

    name: str
    version: str | None
    alias: str | None

    def __str__(self) -> str:
        tail = f"/{self.version}" if self.version is not None else f"@{self.alias}"
        return f"models:/{self.name}{tail}"


def parse_model_ref(ref: str) -> ModelRef | None:
    """Parse a model reference; None when ``ref`` does not start with ``models:/``.

    Raises:
        InputError: a ``models:/`` reference of another shape.

    Example:
        >>> parse_model_ref("models:/poster-ranker@champion")
        ModelRef(name='poster-ranker', version=None, alias='champion')
        >>> parse_model_ref("0123abcd") is None
        True
    """
    if not ref.startswith("models:/"):
        return None
    m = _MODEL_REF.fullmatch(ref)
    if m is None:
        raise InputError(
            f"{ref!r} is not a model reference: use models:/NAME/VERSION (a version number) or "
            f"models:/NAME@ALIAS (e.g. models:/poster-ranker@champion)."
        )
    return ModelRef(m["name"], m["version"], m["alias"])


@dataclass(frozen=True)
class EvaluationRun:
    """One finished evaluation run, as recorded.

    Attributes:
        ref: the reference it was resolved from.
        run_id / experiment_id / run_name: where it is.
        task: ``evaluator.task`` (poster or episode).
        tags / params / metrics: the run's data.
        model_name / model_version: the ``model.name`` / ``model.version`` tags, or None.
    """

    ref: str
    run_id: str
    experiment_id: str
    run_name: str
    task: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]
    model_name: str | None
    model_version: str | None

    @property
    def digest(self) -> str | None:
        """The ``dataset.digest`` tag."""
        return self.tags.get("dataset.digest")

    @property
    def label(self) -> str:
        """``NAME v2`` when the run belongs to a model version, else its run name."""
        if self.model_name:
            return (
                f"{self.model_name} v{self.model_version}"
                if self.model_version
                else (self.model_name)
            )
        return self.run_name or self.run_id[:8]


def mlflow_call(what: str, tracking_uri: str, fn: Callable[[], T]) -> T:
    """Run one MLflow call; a missing entity is the user's error, anything else MLflow's.

    Raises:
        InputError: MLflow says the thing does not exist or the argument is invalid.
        TrackingError: any other failure (server unreachable, store misconfigured).
    """
    try:
        return fn()
    except MlflowException as exc:
        if exc.error_code in _USER_ERRORS:
            raise InputError(f"{what}: {exc.message} (tracking URI {tracking_uri}).") from None
        raise TrackingError(f"{what} failed at {tracking_uri}: {exc.message}") from exc
    except (InputError, TrackingError):
        raise
    except Exception as exc:
        raise TrackingError(
            f"{what} failed at {tracking_uri}: {type(exc).__name__}: {exc}"
        ) from exc


def _client(tracking_uri: str) -> MlflowClient:
    # The registry lives in the same store: never a registry URI set elsewhere in the process
    # (mlflow.set_registry_uri) or in the environment ($MLFLOW_REGISTRY_URI).
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _is_evaluation(tags: Mapping[str, str]) -> bool:
    return "evaluator.task" in tags and tags.get("evaluator.kind") not in NOT_EVALUATIONS


def _evaluation(ref: str, run: Any) -> EvaluationRun:
    tags = dict(run.data.tags)
    return EvaluationRun(
        ref=ref,
        run_id=run.info.run_id,
        experiment_id=run.info.experiment_id,
        run_name=run.info.run_name or "",
        task=tags.get("evaluator.task", ""),
        tags=tags,
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
        model_name=tags.get("model.name"),
        model_version=tags.get("model.version"),
    )


def latest_evaluation_run(tracking_uri: str, name: str, version: str) -> Any | None:
    """The latest FINISHED evaluation run tagged ``model.name=name``, ``model.version=version``.

    Searched in every active experiment of the store; None when there is none.
    """
    client = _client(tracking_uri)

    def search() -> Any | None:
        exp_ids = [
            e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
        ]
        if not exp_ids:
            return None
        runs = client.search_runs(
            exp_ids,
            filter_string=(
                f"tags.`model.name` = {_quote(name)} and tags.`model.version` = "
                f"{_quote(version)} and attributes.status = 'FINISHED'"
            ),
            order_by=["attributes.start_time DESC"],
            max_results=200,
        )
        return next((r for r in runs if _is_evaluation(r.data.tags)), None)

    return mlflow_call(f"searching the evaluation runs of {name} v{version}", tracking_uri, search)


def model_version(tracking_uri: str, name: str, version: str) -> ModelVersion:
    """Version ``version`` of registered model ``name``.

    Raises:
        InputError: no such model or version.
    """
    return mlflow_call(
        f"model {name} version {version}",
        tracking_uri,
        lambda: _client(tracking_uri).get_model_version(name, str(version)),
    )


def find_model_version(tracking_uri: str, name: str, version: str) -> ModelVersion | None:
    """Version ``version`` of model ``name``, or None when the model or version does not exist."""
    try:
        return _client(tracking_uri).get_model_version(name, str(version))
    except MlflowException as exc:
        if exc.error_code in _USER_ERRORS:
            return None
        raise TrackingError(
            f"reading {name} version {version} failed at {tracking_uri}: {exc.message}"
        ) from exc


def alias_version(tracking_uri: str, name: str, alias: str) -> ModelVersion | None:
    """The version alias ``alias`` of model ``name`` points to; None when the alias is not set.

    Raises:
        InputError: no registered model ``name``.
    """
    client = _client(tracking_uri)
    mlflow_call(
        f"registered model {name!r}", tracking_uri, lambda: client.get_registered_model(name)
    )
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in _USER_ERRORS:
            return None
        raise TrackingError(
            f"reading alias {alias!r} of {name} failed at {tracking_uri}: {exc.message}"
        ) from exc


def resolve_evaluation(tracking_uri: str, ref: str) -> EvaluationRun:
    """The evaluation run a REF names (see the module docstring).

    Raises:
        InputError: an unknown run, model, version or alias; a run that is not a finished
            evaluation; a model version with no finished evaluation run.
        TrackingError: MLflow could not be read.
    """
    ref = str(ref).strip()
    if not ref:
        raise InputError("an empty reference: give an evaluation run id or models:/NAME/VERSION.")
    model = parse_model_ref(ref)
    if model is not None:
        if model.alias is not None:
            mv = alias_version(tracking_uri, model.name, model.alias)
            if mv is None:
                raise InputError(
                    f"{ref}: registered model {model.name!r} has no alias {model.alias!r} "
                    f"(set it with `video-eval-promote ... promote.apply=true` or in the MLflow "
                    f"UI), at {tracking_uri}."
                )
            version = str(mv.version)
        else:
            version = str(model_version(tracking_uri, model.name, str(model.version)).version)
        run = latest_evaluation_run(tracking_uri, model.name, version)
        if run is None:
            raise InputError(
                f"{ref}: version {version} of {model.name!r} has no finished evaluation run "
                f"(a run tagged model.name={model.name}, model.version={version}) at "
                f"{tracking_uri}; evaluate it with `video-eval ... model.name={model.name} "
                f"model.version={version}`."
            )
        return _evaluation(ref, run)

    client = _client(tracking_uri)
    try:
        run = client.get_run(ref)
    except MlflowException as exc:
        if exc.error_code in _USER_ERRORS:
            raise InputError(
                f"{ref!r} is neither a run id at {tracking_uri} nor a model reference "
                f"(models:/NAME/VERSION or models:/NAME@ALIAS)."
            ) from None
        raise TrackingError(f"reading run {ref} failed at {tracking_uri}: {exc.message}") from exc
    except Exception as exc:
        raise TrackingError(f"reading run {ref} failed at {tracking_uri}: {exc}") from exc
    tags = run.data.tags
    if not _is_evaluation(tags):
        kind = tags.get("evaluator.kind", "not made by video-eval")
        raise InputError(
            f"run {ref} ({run.info.run_name}) is not an evaluation run ({kind}); compare the "
            f"evaluation runs themselves."
        )
    if run.info.status != "FINISHED":
        raise InputError(
            f"run {ref} ({run.info.run_name}) is {run.info.status}, not FINISHED: its "
            f"evaluation did not complete; evaluate the model again."
        )
    return _evaluation(ref, run)


def experiment_name(tracking_uri: str, experiment_id: str) -> str:
    """The name of an experiment, by id."""
    return mlflow_call(
        f"reading experiment {experiment_id}",
        tracking_uri,
        lambda: _client(tracking_uri).get_experiment(experiment_id).name,
    )


def artifact_names(tracking_uri: str, run_id: str) -> set[str]:
    """The paths of the files and folders at the root of a run's artifacts."""
    return mlflow_call(
        f"listing the artifacts of run {run_id}",
        tracking_uri,
        lambda: {a.path for a in _client(tracking_uri).list_artifacts(run_id)},
    )


def download_artifact(tracking_uri: str, run_id: str, path: str, dst: Path) -> Path:
    """Download one artifact file of a run into ``dst``; returns the local path.

    Raises:
        TrackingError: the artifact could not be downloaded.
    """
    dst.mkdir(parents=True, exist_ok=True)
    with _no_progress_bar():
        local = mlflow_call(
            f"downloading {path} of run {run_id}",
            tracking_uri,
            lambda: _client(tracking_uri).download_artifacts(run_id, path, str(dst)),
        )
    return Path(local)


@contextlib.contextmanager
def _no_progress_bar() -> Iterator[None]:
    # One small file per download: MLflow's tqdm bar would only clutter the command's output.
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    previous = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = previous


@contextlib.contextmanager
def quiet_model_logging() -> Iterator[None]:
    # MLflow's advice on logging arbitrary models (type hints, input examples, cloudpickle)
    # does not apply to this fixed lookup model and would bury the command's output.
    import logging
    import warnings

    pyfunc_log = logging.getLogger("mlflow.pyfunc")
    level = pyfunc_log.level
    pyfunc_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        pyfunc_log.setLevel(level)


def set_version_tags(tracking_uri: str, name: str, version: str, tags: Mapping[str, str]) -> None:
    """Set tags on a model version."""
    client = _client(tracking_uri)

    def write() -> None:
        for key, value in tags.items():
            client.set_model_version_tag(name, str(version), key, str(value)[:5000])

    mlflow_call(f"tagging {name} version {version}", tracking_uri, write)


def model_aliases(tracking_uri: str, name: str) -> dict[str, str]:
    """Every alias of registered model ``name`` and the version it points to.

    Raises:
        InputError: no registered model ``name``.
    """
    model = mlflow_call(
        f"registered model {name!r}",
        tracking_uri,
        lambda: _client(tracking_uri).get_registered_model(name),
    )
    return {str(alias): str(version) for alias, version in (model.aliases or {}).items()}


# The registry stores at most 5000 characters of a version's description.
MAX_DESCRIPTION = 5000


def append_version_description(tracking_uri: str, name: str, version: str, line: str) -> str:
    """Append ``line`` as a new paragraph of a model version's description; returns the text.

    The oldest paragraphs are dropped when the description would pass the registry's limit,
    so the newest decisions always fit.
    """
    client = _client(tracking_uri)

    def write() -> str:
        old = client.get_model_version(name, str(version)).description or ""
        paragraphs = [p for p in old.split("\n\n") if p.strip()] + [line.strip()]
        text = "\n\n".join(paragraphs)
        while len(text) > MAX_DESCRIPTION and len(paragraphs) > 1:
            paragraphs.pop(0)
            text = "\n\n".join(paragraphs)
        text = text[-MAX_DESCRIPTION:]
        client.update_model_version(name, str(version), description=text)
        return text

    return mlflow_call(f"describing {name} version {version}", tracking_uri, write)


def set_alias(tracking_uri: str, name: str, alias: str, version: str) -> None:
    """Point ``alias`` of model ``name`` at ``version`` (moving it if it was elsewhere)."""
    mlflow_call(
        f"setting alias {alias!r} of {name} to version {version}",
        tracking_uri,
        lambda: _client(tracking_uri).set_registered_model_alias(name, alias, str(version)),
    )
