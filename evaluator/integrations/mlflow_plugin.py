"""The ``video-frames`` evaluator of ``mlflow.models.evaluate`` (``mlflow.model_evaluator``).

    mlflow.models.evaluate(
        model=None or a pyfunc model / URI,   # the model returns ranked frames per video
        data=frames_or_video_ids,              # a pandas DataFrame
        predictions="rank",                    # without a model: the rank (or score) column
        model_type="poster-frames",
        evaluators=["video-frames"],
        evaluator_config={"video-frames": {"experts": "experts.parquet", "k_max": 10}},
    )

The plugin only turns ``data`` (or the model's output) and ``evaluator_config`` into the same
validated tables and config `video-eval` builds from files and Hydra, and then calls the same
`evaluate_inputs` and `poster_record`: one core, the same metrics, tables, plots and report.
It logs into the run ``mlflow.models.evaluate`` opened.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models.evaluation import EvaluationResult, ModelEvaluator
from mlflow.models.evaluation.artifacts import (
    ImageEvaluationArtifact,
    JsonEvaluationArtifact,
    ParquetEvaluationArtifact,
    TextEvaluationArtifact,
)
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from evaluator.config import EvaluateConfig
from evaluator.errors import InputError
from evaluator.io.outputs import write_all
from evaluator.io.poster import load_poster_inputs
from evaluator.tasks.poster import (
    build_table_embedder,
    evaluate_inputs,
    poster_record,
    settings_from_config,
)
from evaluator.tracking.mlflow_run import record_into_run

# The model types this evaluator answers for; any other model type is left to other evaluators.
MODEL_TYPES = ("poster-frames",)

# Short keys of evaluator_config and the config keys of `video-eval` they set.
SHORT_KEYS = {
    "time_tolerance_s": "matching.time_tolerance_s",
    "min_cosine": "matching.min_cosine",
    "min_expert_frames": "metrics.min_expert_frames",
    "k_max": "metrics.k_max",
    "bootstrap": "metrics.bootstrap",
    "image_root": "data.image_root",
    "log_table": "mlflow.log_table",
    "model_name": "model.name",
    "model_version": "model.version",
}
# Config groups that may be given whole (as dicts) or by dotted key ("matching.min_cosine").
GROUPS = ("matching", "metrics", "sweep", "embedder", "report", "plots", "data", "model")
# Keys the plugin itself reads; MLflow adds col_mapping to every evaluator's config.
OWN_KEYS = ("experts", "ranking", "output_dir", "col_mapping")


def plugin_config(evaluator_config: dict[str, Any]) -> DictConfig:
    """The `video-eval` config for an ``evaluator_config`` (same key names, checked).

    Keys: the short names of ``SHORT_KEYS`` (``time_tolerance_s``, ``min_cosine``,
    ``min_expert_frames``, ``k_max``, ...), dotted config keys (``sweep.enabled``), or whole
    groups as dicts (``{"report": {"page_size": 20}}``).

    Raises:
        InputError: an unknown key or a value of the wrong type.
    """
    cfg = OmegaConf.structured(EvaluateConfig)
    for key, value in evaluator_config.items():
        if key in OWN_KEYS:
            continue
        target = SHORT_KEYS.get(key, key)
        if target.split(".")[0] not in GROUPS and target not in SHORT_KEYS.values():
            known = ", ".join([*SHORT_KEYS, *OWN_KEYS[:3], *(f"{g}.*" for g in GROUPS)])
            raise InputError(
                f"evaluator_config['video-frames']: unknown key {key!r}; known keys: {known}."
            )
        try:
            OmegaConf.update(cfg, target, value, merge=True)
        except OmegaConfBaseException as exc:
            raise InputError(
                f"evaluator_config['video-frames'][{key!r}] = {value!r}: {exc}".splitlines()[0]
            ) from None
    return cfg


def _predictions_frame(
    dataset: Any, model: Any, predictions: str | None, ranking: str | None
) -> pd.DataFrame:
    """The ranked frames: the model's output on ``data``, or ``data`` + its predictions column."""
    features = pd.DataFrame(dataset.features_data).reset_index(drop=True)
    if model is not None:
        output = model.predict(features)
        if not isinstance(output, pd.DataFrame):
            raise InputError(
                f"the model returned {type(output).__name__}; the video-frames evaluator needs "
                f"a DataFrame of ranked frames (video_id, timestamp, rank or score, embedding "
                f"or image), one row per frame."
            )
        frame, column = output.reset_index(drop=True), predictions
    else:
        frame = features.copy()
        column = getattr(dataset, "predictions_name", None)
        if column is not None:
            frame[column] = dataset.predictions_data
    if column is None or column in ("rank", "score"):
        return frame
    if ranking not in ("rank", "score"):
        raise InputError(
            f"predictions={column!r} is neither 'rank' nor 'score': set evaluator_config "
            f"'ranking' to 'rank' (1 = best) or 'score' (higher is better)."
        )
    return frame.drop(columns=[ranking], errors="ignore").rename(columns={column: ranking})


def _artifacts(files: list[str], artifact_uri: str, evaluation: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "summary": JsonEvaluationArtifact(
            uri=f"{artifact_uri}/summary.json", content=evaluation.summary
        ),
        "match_table": ParquetEvaluationArtifact(
            uri=f"{artifact_uri}/match_table.parquet", content=evaluation.match_table
        ),
    }
    for rel in files:
        uri = f"{artifact_uri}/{rel}"
        if rel.endswith(".png"):
            out[Path(rel).stem] = ImageEvaluationArtifact(uri=uri)
        elif rel == "report.html":
            out["report"] = TextEvaluationArtifact(uri=uri)
        elif rel == "sweep.parquet":
            out["sweep"] = ParquetEvaluationArtifact(uri=uri)
    return out


class VideoFramesEvaluator(ModelEvaluator):
    """``mlflow.models.evaluate`` evaluator of poster-frame models (``poster-frames``).

    ``data`` is either the model's ranked frames (with ``predictions`` naming the rank or score
    column) or the videos to ask a model about (a ``video_id`` column); the model then returns
    ranked frames per video. The expert frames come from ``evaluator_config["experts"]`` (a file
    path or a DataFrame). Metrics, artifacts and tags are exactly those of ``video-eval``.
    """

    @classmethod
    def can_evaluate(cls, *, model_type: Any, evaluator_config: Any, **kwargs: Any) -> bool:
        """True only for this project's model types (``poster-frames``)."""
        return model_type in MODEL_TYPES

    def evaluate(  # type: ignore[override]
        self,
        *,
        model_type: str,
        dataset: Any,
        run_id: str,
        evaluator_config: dict[str, Any],
        model: Any = None,
        extra_metrics: Any = None,
        custom_artifacts: Any = None,
        predictions: str | None = None,
        **kwargs: Any,
    ) -> EvaluationResult:
        """Evaluate, log into run ``run_id`` and return the metrics and artifacts.

        Raises:
            InputError: bad config or input (the run then ends FAILED).
            TrackingError: MLflow refused a write.
        """
        config = dict(evaluator_config or {})
        cfg = plugin_config(config)
        experts = config.get("experts")
        if experts is None:
            raise InputError(
                "evaluator_config['video-frames']['experts'] is required: the expert frames "
                "as a file path (.parquet, .csv, .jsonl) or a pandas DataFrame."
            )
        experts_frame = experts if isinstance(experts, pd.DataFrame) else None
        if experts_frame is None:
            cfg.data.experts = str(experts)
        tracking_uri = mlflow.get_tracking_uri()
        client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        run = client.get_run(run_id)
        label = str(cfg.model.name or run.info.run_name or run_id)

        frame = _predictions_frame(dataset, model, predictions, config.get("ranking"))
        min_cosine = cfg.matching.min_cosine
        settings = settings_from_config(cfg)
        table_embedder = None
        if min_cosine is not None and cfg.embedder.name != "precomputed":
            table_embedder = build_table_embedder(cfg, settings)
        inputs = load_poster_inputs(
            Path("<experts DataFrame>") if experts_frame is not None else Path(str(experts)),
            Path("<mlflow.models.evaluate predictions>"),
            need_embeddings=min_cosine is not None,
            image_embedder=table_embedder,
            experts_frame=experts_frame,
            predictions_frame=frame,
        )
        evaluation = evaluate_inputs(
            inputs, cfg, label=label, table_embedder=table_embedder, settings=settings
        )

        keep = config.get("output_dir")
        with tempfile.TemporaryDirectory(prefix="video-frames-") as tmp:
            output_dir = Path(str(keep)) if keep else Path(tmp)
            written = write_all(output_dir, evaluation.files)
            record = poster_record(
                evaluation, cfg, written, output_dir, table_embedder=table_embedder
            )
            record.tags["evaluator.entry"] = "mlflow.models.evaluate"
            record_into_run(tracking_uri, run_id, record)
        return EvaluationResult(
            metrics=dict(record.metrics),
            artifacts=_artifacts(list(evaluation.files), run.info.artifact_uri, evaluation),
            run_id=run_id,
        )
