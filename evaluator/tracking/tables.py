"""Logging tables the way ``mlflow.log_table`` does, in bounded memory.

``mlflow.log_table`` checks every cell of every column for images in Python and serializes the
whole frame into one string: on a 1M-video match table that is ~10 s and ~1 GB. `log_tables`
writes the same file (``DataFrame.to_json(orient="split", index=False, date_format="iso")``,
byte for byte) a slab of rows at a time, uploads it, and adds it to the run's
``mlflow.loggedArtifacts`` tag, which is what the UI's table view reads. Uploading replaces a
file of the same name, so a table uploaded before a lost connection is never doubled.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

LOGGED_ARTIFACTS_TAG = "mlflow.loggedArtifacts"  # MLflow's list of the run's tables
SLAB_ROWS = 50_000


def write_table_json(frame: pd.DataFrame, out: TextIO, slab_rows: int = SLAB_ROWS) -> None:
    """``frame.to_json(orient="split", index=False, date_format="iso")``, a slab at a time."""
    head = frame.iloc[:0].to_json(orient="split", index=False, date_format="iso")
    empty = '"data":[]}'
    if not head.endswith(empty):  # pandas' layout changed: write it whole, as MLflow would
        out.write(frame.to_json(orient="split", index=False, date_format="iso"))
        return
    out.write(head[: -len(empty)] + '"data":[')
    for start in range(0, len(frame), slab_rows):
        values = frame.iloc[start : start + slab_rows].to_json(orient="values", date_format="iso")
        out.write(("," if start else "") + values[1:-1])
    out.write("]}")


def log_tables(client: Any, run_id: str, tables: Mapping[str, pd.DataFrame]) -> None:
    """Log frames as MLflow tables (the UI's table view) into an existing run."""
    if not tables:
        return
    with tempfile.TemporaryDirectory() as tmp:
        for artifact_file, frame in tables.items():
            name = Path(artifact_file)
            local = Path(tmp) / name.name
            with open(local, "w", encoding="utf-8") as out:
                write_table_json(frame, out)
            folder = name.parent.as_posix()
            client.log_artifact(run_id, str(local), None if folder == "." else folder)
            local.unlink()
    tags = client.get_run(run_id).data.tags
    logged = json.loads(tags.get(LOGGED_ARTIFACTS_TAG, "[]"))
    for artifact_file in tables:
        entry = {"path": artifact_file, "type": "table"}
        if entry not in logged:
            logged.append(entry)
    client.set_tag(run_id, LOGGED_ARTIFACTS_TAG, json.dumps(logged))
