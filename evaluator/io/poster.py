"""Loading the poster task's two tables (docs/inputs.md#what-is-refused) into validated frames."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from evaluator.core.frames import Frames, ranks_from_scores
from evaluator.io.rules import (
    DUPLICATE_RANK,
    IMAGE_COLUMNS,
    KNOWN_COLUMNS,
    NUMERIC_COLUMNS,
    bad_rows,
    missing_images_error,
    missing_rank_error,
    missing_vectors_error,
    other_dim_error,
)
from evaluator.io.sources import Source, read_parts
from evaluator.io.tables import (
    arrow_from_pandas,
    check_rows,
    embedding_column,
    numeric_column,
    read_table,
    refuse_huge_whole_numbers,
    require_columns,
    video_ids,
)

# Computes embeddings for a table that has image / video columns but no embedding column:
# (path of the table, the table as pandas) -> (n, D) float32.
ImageEmbedder = Callable[[Path, pd.DataFrame], np.ndarray]


@dataclass(frozen=True)
class LoadedTable:
    """One validated table.

    Attributes:
        path: the file it came from.
        frame: its scalar columns as pandas (embeddings removed), in file order.
        video_id: the video ids as str, shape (n,).
        timestamp: float64 seconds, shape (n,).
        embedding: (n, D) float32 or None.
        rank: int64 ranks (predictions only; derived from `score` when there is no `rank`).
        rank_source: "rank", "score" or "" (experts).
        in_memory: True when the table came from a DataFrame, not a file (``path`` is then
            only its name in messages).
    """

    path: Path
    frame: pd.DataFrame
    video_id: np.ndarray
    timestamp: np.ndarray
    embedding: np.ndarray | None
    rank: np.ndarray | None
    rank_source: str
    in_memory: bool = False


@dataclass(frozen=True)
class PosterInputs:
    """Both tables, with video ids turned into shared integer codes.

    Attributes:
        experts: expert frames (codes index `video_ids`).
        model: model frames, ranked.
        video_ids: the str id of each code, shape (n_videos,).
        expert_table / prediction_table: the validated tables.
    """

    experts: Frames
    model: Frames
    video_ids: np.ndarray
    expert_table: LoadedTable
    prediction_table: LoadedTable

    @property
    def n_videos(self) -> int:
        return int(self.video_ids.shape[0])


def _scalar_frame(table: pa.Table) -> pd.DataFrame:
    keep = [c for c in table.column_names if c != "embedding"]
    return table.select(keep).to_pandas()


def load_table(
    path: str | Path | Source,
    *,
    role: str,
    need_embeddings: bool,
    image_embedder: ImageEmbedder | None = None,
    embedder_hint: str = "embedder=torchvision",
    frame: pd.DataFrame | pa.Table | None = None,
    first_row: int = 0,
    rows_checked: bool = False,
) -> LoadedTable:
    """Read and validate one poster table.

    Args:
        path: the file (.parquet, .csv or .jsonl) or a source of parquet part files (read
            whole, for vectors computed by an image embedder); with ``frame``, the table's
            name in messages (and, for ``image`` paths, a path whose folder is the default root).
        role: "experts" or "predictions".
        need_embeddings: whether the match rule uses cosine similarity.
        image_embedder: turns `image` / `video_path` rows into vectors, or None.
        embedder_hint: the config override that enables an image embedder, for messages.
        frame: validate this in-memory table (pandas, or Arrow as read) instead of reading
            ``path``.
        first_row: the table's first row is row ``first_row + 1`` of ``path`` in messages (a
            batch read from the middle of a file).
        rows_checked: the rows passed the row checks already (batch by batch, or on Spark):
            they are converted, not checked again. A video's ranks are still checked for
            duplicates (a video's rows meet only here).

    Returns:
        The validated table.

    Raises:
        InputError: for every bad-input class listed in docs/inputs.md#what-is-refused.
    """
    if isinstance(path, Source):
        source, path = path, path.label
        if frame is None and not source.is_single_file:
            frame = read_parts(source)
    path = Path(path)
    if frame is None:
        table = read_table(path)
    elif isinstance(frame, pa.Table):
        table = frame
    else:
        table = arrow_from_pandas(path, frame)
    required = ["video_id", "timestamp"]
    require_columns(path, table, required, role)
    if (
        role == "predictions"
        and "rank" not in table.column_names
        and ("score" not in table.column_names)
    ):
        raise missing_rank_error(path, table.column_names)
    in_memory = frame is not None
    frame = _scalar_frame(table)
    if first_row:
        frame.index = pd.RangeIndex(first_row, first_row + len(frame))
    ids = video_ids(path, table, frame)
    frame["video_id"] = ids
    ts = _checked_number(path, table, "timestamp", frame, checked=rows_checked)

    embedding = None
    if need_embeddings and image_embedder is not None:
        # Vectors are computed from the frames once both tables are valid (load_poster_inputs).
        if not any(c in table.column_names for c in IMAGE_COLUMNS):
            raise missing_images_error(path, role)
    elif need_embeddings:
        if "embedding" not in table.column_names:
            raise missing_vectors_error(path, role, table.column_names, embedder_hint)
        embedding = embedding_column(path, table, frame, checked=rows_checked).values

    rank = None
    rank_source = ""
    if role == "predictions":
        if "rank" in table.column_names:
            rank = _ranks(path, table, frame, ids, rows_checked)
            rank_source = "rank"
        else:
            score = _checked_number(path, table, "score", frame, checked=rows_checked)
            codes = pd.factorize(ids)[0]
            rank = ranks_from_scores(codes, score, ts)
            rank_source = "score"
    return LoadedTable(path, frame, ids, ts, embedding, rank, rank_source, in_memory)


def _checked_number(
    path: Path,
    table: pa.Table,
    column: str,
    frame: pd.DataFrame,
    *,
    checked: bool,
    whole: bool = False,
) -> np.ndarray:
    """A numeric column as float64, refused by its rules (`evaluator.io.rules.NUMERIC_COLUMNS`)
    unless its rows were ``checked`` already."""
    what, rules = NUMERIC_COLUMNS[column]
    values = numeric_column(path, table, column, frame, what)
    if checked:
        return values
    if whole:
        refuse_huge_whole_numbers(path, column, values, frame)
    for rule in rules:
        check_rows(bad_rows(rule, values), path, column, rule.problem, frame)
    return values


def _ranks(
    path: Path, table: pa.Table, frame: pd.DataFrame, ids: np.ndarray, checked: bool
) -> np.ndarray:
    rank = _checked_number(path, table, "rank", frame, checked=checked, whole=True)
    rank = rank.astype(np.int64)
    dup = pd.DataFrame({"v": ids, "r": rank}).duplicated(keep=False).to_numpy()
    check_rows(dup, path, "rank", DUPLICATE_RANK, frame)
    return rank


def row_key(frame: pd.DataFrame) -> np.ndarray | None:
    """Integer code of each row's other columns (annotator, frame_id, ...)."""
    other = [c for c in frame.columns if c not in KNOWN_COLUMNS]
    if not other:
        return None
    sub = frame[other].map(lambda v: repr(v) if isinstance(v, list | dict | np.ndarray) else v)
    return sub.groupby(other, dropna=False, sort=False).ngroup().to_numpy(dtype=np.int64)


def load_poster_inputs(
    experts_path: str | Path | Source,
    predictions_path: str | Path | Source,
    *,
    need_embeddings: bool,
    image_embedder: ImageEmbedder | None = None,
    embedder_hint: str = "embedder=torchvision",
    experts_frame: pd.DataFrame | None = None,
    predictions_frame: pd.DataFrame | None = None,
) -> PosterInputs:
    """Read, validate and align the expert and prediction tables.

    Either table may be given in memory (``experts_frame`` / ``predictions_frame``, as the
    ``mlflow.models.evaluate`` plugin does); its path argument then only names it in messages.

    Raises:
        InputError: any bad input (docs/inputs.md#what-is-refused), including embeddings whose
            length differs between the two files.
    """
    kw: dict[str, Any] = {
        "need_embeddings": need_embeddings,
        "image_embedder": image_embedder,
        "embedder_hint": embedder_hint,
    }
    # The two files are read and checked at the same time (parquet decoding and the numpy
    # checks release the GIL); an error in the experts file is still the one reported first.
    with ThreadPoolExecutor(max_workers=2) as pool:
        exp_job = pool.submit(load_table, experts_path, role="experts", frame=experts_frame, **kw)
        pred_job = pool.submit(
            load_table, predictions_path, role="predictions", frame=predictions_frame, **kw
        )
        exp, pred = exp_job.result(), pred_job.result()
    codes, uniques = pd.factorize(np.concatenate([exp.video_id, pred.video_id]))
    n_exp = exp.video_id.shape[0]
    if need_embeddings and image_embedder is not None:
        embed_tables = getattr(image_embedder, "embed_tables", None)
        if embed_tables is not None:
            # Both tables at once, and only the frames that can matter (`TableEmbedder`).
            exp, pred = embed_tables(
                exp,
                pred,
                Frames(codes[:n_exp].astype(np.int64), exp.timestamp, row_key=row_key(exp.frame)),
                Frames(codes[n_exp:].astype(np.int64), pred.timestamp, rank=pred.rank),
                len(uniques),
            )
        else:
            exp = replace(exp, embedding=image_embedder(exp.path, exp.frame))
            pred = replace(pred, embedding=image_embedder(pred.path, pred.frame))
    if exp.embedding is not None and pred.embedding is not None:
        if exp.embedding.shape[1] != pred.embedding.shape[1]:
            raise other_dim_error(
                pred.path,
                "file",
                pred.embedding.shape[1],
                f"the experts file {exp.path}",
                exp.embedding.shape[1],
            )
    experts = Frames(
        video=codes[:n_exp].astype(np.int64),
        timestamp=exp.timestamp,
        embedding=exp.embedding,
        row_key=row_key(exp.frame),
    )
    model = Frames(
        video=codes[n_exp:].astype(np.int64),
        timestamp=pred.timestamp,
        embedding=pred.embedding,
        rank=pred.rank,
    )
    return PosterInputs(experts, model, np.asarray(uniques, dtype=object), exp, pred)
