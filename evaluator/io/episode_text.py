"""The optional text columns of the episode table: ``text_read``, ``text_true``, ``text_episode``.

- ``text_read`` / ``text_true``: text (``text_read`` null or "" = read nothing, kept as null;
  ``text_true`` null = not transcribed, "" = no burned-in text). Numbers, lists or any other
  JSON / parquet type are refused. In a CSV file every cell is text and an empty cell is null.
- ``text_episode``: a whole number, or null (= the text-based method read none).

A ``text_true`` or ``text_episode`` column whose every value is null is refused (drop the
column instead), as is ``text_true`` without ``text_read``. Messages name the file, the column
and up to five rows, like every other input error.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from evaluator.errors import InputError
from evaluator.io.tables import check_rows, numeric_column, refuse_huge_whole_numbers

TEXT_COLUMNS = ("text_read", "text_true")
TEXT_EPISODE = "text_episode"
OPTIONAL_TEXT_COLUMNS = (*TEXT_COLUMNS, TEXT_EPISODE)


@dataclass(frozen=True)
class EpisodeTexts:
    """The validated text columns, in the file's row order (None when the column is absent).

    Attributes:
        text_read: object array of str / None.
        text_true: object array of str / None.
        text_episode: float64 whole numbers, NaN where the method read none.
    """

    text_read: np.ndarray | None = None
    text_true: np.ndarray | None = None
    text_episode: np.ndarray | None = None

    def take(self, order: np.ndarray) -> EpisodeTexts:
        """The same columns with the rows in ``order``."""
        return EpisodeTexts(*(None if a is None else a[order] for a in self.arrays()))

    def arrays(self) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        return self.text_read, self.text_true, self.text_episode


def _is_text_type(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)


def _json_types(path: Path, column: str) -> np.ndarray:
    """Per data row of a JSON-lines file, whether ``column`` holds a non-text JSON value.

    The JSON-lines reader turns a column that mixes types into text (``7`` becomes ``"7"``), so
    the types are read back from the lines themselves.
    """
    bad = []
    with path.open("r", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                value = json.loads(line).get(column)
                # NaN (Python's JSON for a missing float) is a missing value, as in the reader.
                missing = value is None or (isinstance(value, float) and math.isnan(value))
                bad.append(not missing and not isinstance(value, str))
    return np.asarray(bad, dtype=bool)


def _text_column(path: Path, table: pa.Table, column: str, frame: pd.DataFrame) -> np.ndarray:
    col = table[column]
    null = col.is_null().to_numpy(zero_copy_only=False)
    shown = frame.assign(**{column: col.to_pylist()})  # the offending values in the message
    if not _is_text_type(col.type):
        problem = f"wrong type: expected text (a string), got {col.type}"
        check_rows(~null, path, column, problem, shown)
    if path.suffix.lower() == ".jsonl" and path.is_file():
        bad = _json_types(path, column)
        if bad.shape == null.shape:
            problem = "wrong type: expected text (a string), got a number, list or object"
            check_rows(bad, path, column, problem, shown)
    values = col.cast(pa.string()) if pa.types.is_null(col.type) else col
    return np.asarray(values.to_pylist(), dtype=object)


def _not_empty(
    path: Path, column: str, missing: np.ndarray, frame: pd.DataFrame, hint: str
) -> None:
    if missing.all():
        check_rows(
            missing,
            path,
            column,
            f"the column is given but every value is missing ({hint}; drop the column to "
            f"evaluate without it)",
            frame,
        )


def episode_texts(path: Path, table: pa.Table, frame: pd.DataFrame) -> EpisodeTexts:
    """Validate the text columns the table has (any, all or none of them).

    Args:
        path: names the table in messages (and is re-read for JSON-lines types).
        table: the table as read.
        frame: its ``video_id`` column (for the rows in messages), in the table's row order.

    Returns:
        The :class:`EpisodeTexts`, in the table's row order.

    Raises:
        InputError: a text value that is not text, a ``text_episode`` that is not a whole
            number, a ``text_true`` / ``text_episode`` column with no value, ``text_true``
            without ``text_read``.
    """
    names = table.column_names
    texts = {c: _text_column(path, table, c, frame) for c in TEXT_COLUMNS if c in names}
    if "text_true" in texts:
        if "text_read" not in texts:
            raise InputError(
                f"{path}: column 'text_read' is missing: with text_true the text metrics need "
                f"what the reader read (null or empty = read nothing)."
            )
        missing = np.array([v is None for v in texts["text_true"]], dtype=bool)
        _not_empty(path, "text_true", missing, frame, "no video is transcribed")
    episode = None
    if TEXT_EPISODE in names:
        shown = frame.assign(**{TEXT_EPISODE: table[TEXT_EPISODE].to_pylist()})
        episode = numeric_column(path, table, TEXT_EPISODE, shown, "a whole episode number")
        check_rows(
            np.isinf(episode) | (np.isfinite(episode) & (episode != np.round(episode))),
            path,
            TEXT_EPISODE,
            "episode number must be a whole number or null (found an inf or fractional value)",
            shown,
        )
        refuse_huge_whole_numbers(path, TEXT_EPISODE, episode, shown)
        _not_empty(path, TEXT_EPISODE, np.isnan(episode), frame, "the method read no number")
    read = texts.get("text_read")
    if read is not None:
        # "" and null both mean "read nothing"; one form, so a CSV (where "" reads as null)
        # and a parquet file of the same table give the same per-video table.
        read = np.asarray([v or None for v in read], dtype=object)
    return EpisodeTexts(read, texts.get("text_true"), episode)
