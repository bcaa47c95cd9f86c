"""``embedder=timm`` end to end: image files -> a tiny timm model's vectors -> a recorded run."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from evaluator.tasks.poster import run_poster
from tests.conftest import compose_config
from tests.test_images_end_to_end import image_tables  # noqa: F401  (the fixture)


def test_a_tiny_timm_model_computes_the_vectors(image_tables, tmp_path: Path) -> None:  # noqa: F811
    cfg = compose_config(
        [
            f"data.experts={image_tables['experts']}",
            f"data.predictions={image_tables['predictions']}",
            f"data.image_root={image_tables['root']}",
            f"mlflow.tracking_uri=sqlite:///{tmp_path / 'db'}",
            "embedder.cache_dir=off",
            "embedder=timm",
            "embedder.model_name=test_vit",
            "embedder.pretrained=false",
            "embedder.batch_size=4",
            "embedder.progress=false",
            "metrics.min_expert_frames=3",
            "metrics.bootstrap.n_resamples=0",
            "matching.center=experts",
            "plots=false",
        ]
    )
    with pytest.warns(UserWarning, match="random weights"):
        outcome = run_poster(cfg, tmp_path / "out")
    metrics = outcome.summary["metrics"]
    # The model frames at 90 s and 200 s lie beyond every time window: they get no vector
    # (every expert frame does: centring needs them all).
    assert (metrics["n_embeddings_computed"], metrics["n_frames_not_embedded"]) == (8, 2)
    assert outcome.scored is not None and outcome.scored.embedding_dim == 64
    calibration = outcome.summary["calibration"]
    # Two videos of three expert frames: 9 unrelated pairs, centred vectors.
    assert (calibration["n_pairs"], calibration["center"]) == (9, "experts")
    run = MlflowClient(f"sqlite:///{tmp_path / 'db'}").get_run(outcome.run.run_id)
    assert run.data.params["embedder.model"] == "timm/test_vit"
    assert run.data.params["embedder.dim"] == "64"
    assert "cosine_false_match_rate" in run.data.metrics
