"""The video-frames evaluator through mlflow.models.evaluate, end to end on a sqlite store."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.models.evaluation.base import list_evaluators
from mlflow.tracking import MlflowClient

from evaluator.errors import InputError
from evaluator.integrations.mlflow_plugin import VideoFramesEvaluator
from evaluator.integrations.pyfunc import log_ranked_frames_model
from evaluator.tasks.poster import run_poster
from tests.conftest import compose_config


@pytest.fixture()
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh sqlite store as the fluent API's tracking URI (artifacts under tmp_path)."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("plugin")
    yield uri
    mlflow.set_tracking_uri(None)


def _cli_metrics(demo_files: dict[str, Path], tmp_path: Path, model: str, *extra: str) -> dict:
    cfg = compose_config(
        [
            f"data.experts={demo_files['experts']}",
            f"data.predictions={demo_files[model]}",
            *extra,
        ]
    )
    outcome = run_poster(cfg, tmp_path / f"cli-{model}", track=False)
    return outcome.summary["metrics"]


def test_entry_point_is_registered() -> None:
    assert "video-frames" in list_evaluators()


@pytest.mark.parametrize("model_type", ["classifier", "regressor", "text", None, "poster"])
def test_can_evaluate_only_this_projects_model_types(model_type: str | None) -> None:
    assert not VideoFramesEvaluator.can_evaluate(model_type=model_type, evaluator_config={})
    assert VideoFramesEvaluator.can_evaluate(model_type="poster-frames", evaluator_config={})


def test_static_predictions_give_video_eval_numbers(
    store: str, demo_files: dict[str, Path], tmp_path: Path
) -> None:
    data = pd.read_parquet(demo_files["baseline"])
    with mlflow.start_run(run_name="static") as run:
        result = mlflow.models.evaluate(
            data=data,
            predictions="rank",
            model_type="poster-frames",
            evaluators=["video-frames"],
            evaluator_config={"video-frames": {"experts": str(demo_files["experts"])}},
        )
    expected = _cli_metrics(demo_files, tmp_path, "baseline")
    for name, value in expected.items():
        if value is None or not np.isfinite(value):
            continue
        assert result.metrics[name] == pytest.approx(value, abs=0), name

    client = MlflowClient(store)
    logged = client.get_run(run.info.run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.metrics["recall_at_10"] == expected["recall_at_10"]
    assert logged.data.tags["evaluator.task"] == "poster"
    assert logged.data.tags["evaluator.entry"] == "mlflow.models.evaluate"
    assert logged.data.params["metrics.k_max"] == "10"
    curve = client.get_metric_history(run.info.run_id, "recall_at_k")
    assert [m.step for m in sorted(curve, key=lambda m: m.step)] == list(range(1, 11))
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.html", "summary.json", "match_table.parquet", "match_table.json"} <= names
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {"plots/recall_at_k.png", "plots/pairs.png", "plots/sweep_recall_at_10.png"} <= plots
    assert {"summary", "match_table", "report", "recall_at_k"} <= set(result.artifacts)
    table = result.artifacts["match_table"].content
    assert int(table["eligible"].sum()) == int(expected["n_videos_eligible"])
    local = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="summary.json"
    )
    summary = json.loads(Path(local).read_text())
    assert summary["metrics"]["mrr_at_10"] == pytest.approx(expected["mrr_at_10"])


def test_pyfunc_model_and_settings_with_video_eval_names(
    store: str, demo_files: dict[str, Path], tmp_path: Path
) -> None:
    experts = pd.read_parquet(demo_files["experts"])
    videos = pd.DataFrame({"video_id": experts["video_id"].drop_duplicates()})
    settings = {"time_tolerance_s": 2.0, "min_cosine": 0.6, "k_max": 5, "min_expert_frames": 3}
    with mlflow.start_run(run_name="pyfunc") as run:
        info = log_ranked_frames_model(demo_files["candidate"])
        result = mlflow.models.evaluate(
            model=info.model_uri,
            data=videos,
            model_type="poster-frames",
            evaluators=["video-frames"],
            evaluator_config={"video-frames": {"experts": experts, **settings}},
        )
    expected = _cli_metrics(
        demo_files,
        tmp_path,
        "candidate",
        "matching.time_tolerance_s=2.0",
        "matching.min_cosine=0.6",
        "metrics.k_max=5",
        "metrics.min_expert_frames=3",
    )
    assert "recall_at_10" not in result.metrics
    for name in ("recall_at_1", "recall_at_5", "mrr_at_5", "precision_at_5", "n_videos_eligible"):
        assert result.metrics[name] == pytest.approx(expected[name], abs=0), name
    params = MlflowClient(store).get_run(run.info.run_id).data.params
    assert params["matching.time_tolerance_s"] == "2.0"
    assert params["data.experts_resolved"] == "<experts DataFrame>"


def test_without_evaluators_only_video_frames_answers(
    store: str, demo_files: dict[str, Path]
) -> None:
    data = pd.read_parquet(demo_files["candidate"])
    with mlflow.start_run():
        result = mlflow.models.evaluate(
            data=data,
            predictions="score",
            model_type="poster-frames",
            evaluator_config={"experts": str(demo_files["experts"])},
        )
    assert "recall_at_10" in result.metrics


def test_other_model_types_never_reach_the_plugin(store: str) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 0, 1], "p": [0, 1, 1, 1]})
    with mlflow.start_run():
        result = mlflow.models.evaluate(
            data=frame, targets="y", predictions="p", model_type="classifier"
        )
    assert "recall_at_10" not in result.metrics
    assert "accuracy_score" in result.metrics


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, r"\['experts'\] is required"),
        ({"experts": "EXPERTS", "k_maxx": 3}, r"unknown key 'k_maxx'"),
        ({"experts": "EXPERTS", "k_max": "ten"}, r"\['k_max'\] = 'ten'"),
        ({"experts": "EXPERTS", "min_cosine": 2.0}, r"min_cosine must be in \[-1, 1\]"),
    ],
)
def test_bad_config_fails_the_run_with_a_message(
    store: str, demo_files: dict[str, Path], config: dict, message: str
) -> None:
    config = {k: (str(demo_files["experts"]) if v == "EXPERTS" else v) for k, v in config.items()}
    data = pd.read_parquet(demo_files["baseline"])
    with pytest.raises((InputError, MlflowException), match=message):
        with mlflow.start_run() as run:
            mlflow.models.evaluate(
                data=data,
                predictions="rank",
                model_type="poster-frames",
                evaluators=["video-frames"],
                evaluator_config={"video-frames": config},
            )
    assert MlflowClient(store).get_run(run.info.run_id).info.status == "FAILED"


def test_bad_predictions_are_refused_naming_the_column(
    store: str, demo_files: dict[str, Path]
) -> None:
    data = pd.read_parquet(demo_files["baseline"])
    data.loc[3, "timestamp"] = -1.0
    with pytest.raises(InputError, match=r"predictions>: column 'timestamp'.*row 4"):
        with mlflow.start_run():
            mlflow.models.evaluate(
                data=data,
                predictions="rank",
                model_type="poster-frames",
                evaluators=["video-frames"],
                evaluator_config={"video-frames": {"experts": str(demo_files["experts"])}},
            )
