"""A pyfunc model that serves ranked frames from a predictions file.

`RankedFramesLookup` is the smallest model ``mlflow.models.evaluate`` can call with the
``video-frames`` evaluator: ``predict`` takes a DataFrame with a ``video_id`` column and returns
the ranked frames of those videos (``video_id``, ``timestamp``, ``rank`` or ``score``,
``embedding`` or ``image``), read from the file logged with the model. It lets a team evaluate a
model whose frames were computed offline through the same ``mlflow.models.evaluate`` call they
use for live models. `log_ranked_frames_model` logs it into MLflow's active run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from evaluator.io.tables import read_table

PREDICTIONS_ARTIFACT = "predictions"


class RankedFramesLookup(PythonModel):
    """Returns the ranked frames of the requested videos from the logged predictions file."""

    def load_context(self, context: Any) -> None:
        """Read the predictions file (artifact ``predictions``: .parquet, .csv or .jsonl)."""
        table = read_table(context.artifacts[PREDICTIONS_ARTIFACT]).to_pandas()
        table["video_id"] = table["video_id"].astype(str)
        self._frames = table

    # pd.DataFrame hints: MLflow passes the frame through as is (no per-row schema).
    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """The ranked frames of the videos in ``model_input["video_id"]``, best first.

        Raises:
            ValueError: ``model_input`` has no ``video_id`` column.
        """
        frame = pd.DataFrame(model_input)
        if "video_id" not in frame.columns:
            raise ValueError(
                f"RankedFramesLookup.predict needs a 'video_id' column; got columns "
                f"{list(frame.columns)}."
            )
        ids = frame["video_id"].astype(str)
        order = {v: i for i, v in enumerate(dict.fromkeys(ids))}
        rows = self._frames[self._frames["video_id"].isin(order)]
        # Videos in the order asked for, each in rank order (best score first).
        keys = ["_order", "rank"] if "rank" in rows.columns else ["_order", "score"]
        ascending = [True, "rank" in rows.columns]
        rows = rows.assign(_order=rows["video_id"].map(order))
        rows = rows.sort_values(keys, ascending=ascending, kind="stable")
        return rows.drop(columns="_order").reset_index(drop=True)


def log_ranked_frames_model(predictions: str | Path, name: str = "model") -> Any:
    """Log a `RankedFramesLookup` serving ``predictions`` into the active run.

    Args:
        predictions: the predictions file (.parquet, .csv or .jsonl).
        name: the model's name in the run.

    Returns:
        MLflow's ModelInfo (``.model_uri`` is what ``mlflow.models.evaluate`` takes).
    """
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=RankedFramesLookup(),
        artifacts={PREDICTIONS_ARTIFACT: str(predictions)},
        # The class lives in this package; no requirement inference (it imports the world).
        pip_requirements=["video-evaluator", "pandas", "pyarrow"],
    )
