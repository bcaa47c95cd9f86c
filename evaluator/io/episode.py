"""Loading the episode task's table into validated arrays (docs/inputs.md#episode-table).

One row per video: ``video_id`` (text), ``metadata_episode``, ``predicted_episode``,
``true_episode`` (whole numbers; integral floats such as ``3.0`` are accepted), ``confidence``
in [0, 1]. Optional ``series_id`` and ``season`` are carried along and can group the
breakdown. Bad input is refused as for the poster task (docs/inputs.md#what-is-refused): the
message names the file, the column and up to five rows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from evaluator.io.episode_text import TEXT_COLUMNS, EpisodeTexts, episode_texts
from evaluator.io.tables import (
    MAX_EXACT_INTEGER,
    check_rows,
    numeric_column,
    read_table,
    refuse_huge_whole_numbers,
    require_columns,
    video_ids,
)

EPISODE_COLUMNS = ("metadata_episode", "predicted_episode", "true_episode")
REQUIRED_COLUMNS = ("video_id", *EPISODE_COLUMNS, "confidence")
CARRIED_COLUMNS = ("series_id", "season")


@dataclass(frozen=True)
class EpisodeTable:
    """One validated episode table, one row per video, sorted by video id.

    Attributes:
        path: the file it came from.
        video_id: video ids as str, unique, shape (n,).
        metadata_episode: int64 episode number in the metadata (or burned in), shape (n,).
        predicted_episode: int64 episode number the model read, shape (n,).
        true_episode: int64 episode number verified by human QC, shape (n,).
        confidence: float64 model confidence in [0, 1], shape (n,).
        carried: the optional columns present (``series_id``, ``season`` and the group
            column), name -> values in the same order, for the per-video table.
        groups: the group label per video (column ``group_column``), or None.
        group_column: the column the labels come from, or None.
        texts: the optional ``text_read`` / ``text_true`` / ``text_episode`` columns.
    """

    path: Path
    video_id: np.ndarray
    metadata_episode: np.ndarray
    predicted_episode: np.ndarray
    true_episode: np.ndarray
    confidence: np.ndarray
    carried: dict[str, pd.Series]
    groups: np.ndarray | None
    group_column: str | None
    texts: EpisodeTexts = field(default_factory=EpisodeTexts)

    @property
    def n_videos(self) -> int:
        return int(self.video_id.shape[0])


def _episode_numbers(path: Path, table: pa.Table, column: str, frame: pd.DataFrame) -> np.ndarray:
    values = numeric_column(path, table, column, frame, "a whole episode number")
    refuse_huge_whole_numbers(path, column, values, frame)
    bad = ~np.isfinite(values) | (values != np.round(values))
    check_rows(
        bad,
        path,
        column,
        "episode number must be a whole number (found a missing, NaN, inf or fractional value)",
        frame,
    )
    return values.astype(np.int64)


def _group_labels(path: Path, table: pa.Table, column: str, frame: pd.DataFrame) -> np.ndarray:
    """The group column: integers (or integral floats) stay integers, anything else is text."""
    col = table[column]
    null = col.is_null().to_numpy(zero_copy_only=False)
    check_rows(
        null,
        path,
        column,
        f"missing group label (episode.group_by={column}; set episode.group_by=null for "
        f"no per-group breakdown)",
        frame,
    )
    if pa.types.is_integer(col.type):
        with contextlib.suppress(pa.ArrowInvalid):  # unsigned labels beyond int64: their text
            return col.cast(pa.int64()).to_numpy(zero_copy_only=False)
    elif pa.types.is_floating(col.type):
        values = col.to_numpy(zero_copy_only=False).astype(np.float64)
        whole = np.isfinite(values) & (values == np.round(values))
        if np.all(whole & (np.abs(values) <= MAX_EXACT_INTEGER)):
            return values.astype(np.int64)
    return np.asarray([str(v) for v in col.to_pylist()], dtype=object)


def load_episode_table(path: str | Path, *, group_by: str | None = "series_id") -> EpisodeTable:
    """Read and validate one episode table.

    Args:
        path: the file (.parquet, .csv or .jsonl; the extension decides).
        group_by: the column whose values group the breakdown; None, or a column the file
            lacks, gives no groups.

    Returns:
        The validated table.

    Raises:
        InputError: a missing file or column, an empty table, an episode number that is not a
            whole number, a confidence outside [0, 1] or missing / NaN, a duplicate or
            missing video id, a missing group label.
    """
    path = Path(path)
    text_columns: Sequence[str] = ("video_id", "series_id", *TEXT_COLUMNS)
    return episode_table(path, read_table(path, string_columns=text_columns), group_by=group_by)


def episode_table(path: Path, table: pa.Table, *, group_by: str | None) -> EpisodeTable:
    """Validate an episode table already read (a file, or Spark's rows of one, `engine=spark`).

    Args:
        path: names the table in messages.
        table: its columns; ``video_id`` and ``series_id`` as read from text.
        group_by: as for `load_episode_table`.

    Raises:
        InputError: as `load_episode_table`.
    """
    require_columns(path, table, REQUIRED_COLUMNS, "episodes")
    frame = table.select(list(REQUIRED_COLUMNS)).to_pandas()
    ids = video_ids(path, table)
    frame["video_id"] = ids

    dup = pd.Series(ids).duplicated(keep=False).to_numpy()
    check_rows(
        dup,
        path,
        "video_id",
        "duplicate video id (the episode table needs one row per video)",
        frame,
    )
    episodes = {c: _episode_numbers(path, table, c, frame) for c in EPISODE_COLUMNS}
    confidence = numeric_column(path, table, "confidence", frame, "a number in [0, 1]")
    bad = ~((confidence >= 0.0) & (confidence <= 1.0))  # NaN and missing fail both
    check_rows(
        bad,
        path,
        "confidence",
        "confidence must be a number in [0, 1] (found a missing, NaN or out-of-range value)",
        frame,
    )

    group_column = group_by if group_by and group_by in table.column_names else None
    groups = None if group_column is None else _group_labels(path, table, group_column, frame)
    texts = episode_texts(path, table, frame)
    carried: dict[str, pd.Series] = {}
    for column in (*CARRIED_COLUMNS, group_column):
        if column and column in table.column_names and column not in REQUIRED_COLUMNS:
            # Nullable dtypes keep integers integers next to missing values.
            carried[column] = table[column].to_pandas().convert_dtypes()
    # Videos in video-id order: the bootstrap draws videos by position, so a fixed order
    # makes every number independent of the file's row order.
    order = np.argsort(ids.astype(str), kind="stable")
    return EpisodeTable(
        path=path,
        video_id=ids[order],
        metadata_episode=episodes["metadata_episode"][order],
        predicted_episode=episodes["predicted_episode"][order],
        true_episode=episodes["true_episode"][order],
        confidence=confidence[order],
        carried={k: v.iloc[order].reset_index(drop=True) for k, v in carried.items()},
        groups=None if groups is None else groups[order],
        group_column=group_column,
        texts=texts.take(order),
    )
