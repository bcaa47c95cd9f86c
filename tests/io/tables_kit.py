"""Writing a test table in the format its path names (.parquet, .csv, else JSON lines)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd


def write_table(
    frame: pd.DataFrame, path: Path, *, json_cells: Iterable[str] = (), ensure_ascii: bool = True
) -> Path:
    """Write ``frame`` to ``path`` in the format of its extension and return the path.

    In CSV the list cells of the ``json_cells`` columns are written as JSON arrays; JSON lines
    escape non-ASCII text unless ``ensure_ascii`` is false.
    """
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".csv":
        out = frame.copy()
        for column in json_cells:
            if column in out:
                out[column] = [json.dumps(v) if isinstance(v, list) else v for v in out[column]]
        out.to_csv(path, index=False)
    else:
        records = frame.to_dict(orient="records")
        path.write_text("".join(json.dumps(r, ensure_ascii=ensure_ascii) + "\n" for r in records))
    return path


def episode_frame(
    video_id: list[str], predicted: list[int], true: list[int], **extra: object
) -> pd.DataFrame:
    """Four videos' episode rows: metadata episodes 1-4, confidences 0.9, 0.5, 1.0 and 0.0, the
    given ids, predicted and true episodes, and the ``extra`` columns."""
    return pd.DataFrame(
        {
            "video_id": video_id,
            "metadata_episode": [1, 2, 3, 4],
            "predicted_episode": predicted,
            "confidence": [0.9, 0.5, 1.0, 0.0],
            "true_episode": true,
            **extra,
        }
    )
