"""Scoring one work unit: all rows of a set of videos -> the set's `PosterPartial`.

This is the function every engine runs per unit: the local streaming engine on each in-memory
or on-disk bucket, the Spark engine inside ``applyInPandas`` (one call per group of videos).
It scores with `evaluator.core.poster.score_set` and keeps the report gallery's frames beside
the partial (`evaluator.report.gallery.ScoredSet`). Scored sets of disjoint videos merge with
`evaluator.report.gallery.merge_scored`, and `finish_scored` turns the merge into the full
result, equal to an in-memory evaluation of all videos.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from evaluator.core.calibration import VectorSums, pool_sums
from evaluator.core.frames import Frames
from evaluator.core.partials import FinishedPoster, canonical_order, finish
from evaluator.core.poster import PosterSettings, score_set
from evaluator.errors import InputError
from evaluator.io.partition import ORDER_COLUMN, ROW_COLUMN
from evaluator.io.poster import LoadedTable, PosterInputs, load_table, row_key
from evaluator.report.gallery import (
    FrameJudge,
    FrameSources,
    GalleryFrames,
    ScoredSet,
    finished_gallery,
)

# Optional int64 columns of a unit's tables (not data; removed before validation):
# ORDER_COLUMN ("__order"): the row's position in "all expert rows, then all prediction rows"
#   of the whole evaluation (file order over the part files); a video's order key is its
#   smallest value, and results are reported in that order (the order of an in-memory
#   evaluation). Without it the row's position in the unit's tables is used (experts first).
# ROW_COLUMN ("__row"): the row id reported for the row's frame in the report's gallery (its
#   position in its own table over all part files); default its position in the unit's table.
RESERVED_COLUMNS = (ORDER_COLUMN, ROW_COLUMN)


@dataclass(frozen=True)
class _Side:
    table: LoadedTable
    order: np.ndarray | None
    row: np.ndarray | None


def _split(
    label: str, data: pd.DataFrame | pa.Table, role: str, need: bool, rows_checked: bool
) -> _Side:
    table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
    extra: dict[str, np.ndarray | None] = {}
    for name in RESERVED_COLUMNS:
        extra[name] = None
        if name in table.column_names:
            extra[name] = table[name].to_numpy().astype(np.int64, copy=False)
            table = table.drop_columns([name])
    loaded = load_table(
        label, role=role, need_embeddings=need, frame=table, rows_checked=rows_checked
    )
    return _Side(loaded, extra[ORDER_COLUMN], extra[ROW_COLUMN])


def score_unit(
    experts: pd.DataFrame | pa.Table,
    predictions: pd.DataFrame | pa.Table,
    settings: PosterSettings,
    *,
    judge_frames: bool = False,
    experts_label: str = "experts",
    predictions_label: str = "predictions",
    center: np.ndarray | None = None,
    rows_checked: bool = False,
) -> ScoredSet:
    """Score one unit: every expert and prediction row of a set of videos.

    The unit must hold ALL rows of each of its videos (from both tables); rows of one video
    keep their relative order from the input (it breaks ties between equal scores and
    timestamps). Columns are those of the input tables (docs/inputs.md#what-is-refused):
    ``video_id`` (text or integers), ``timestamp``; predictions ``rank`` or ``score``; ``embedding``
    (list or fixed-size list of numbers per row, any float width; in pandas a sequence or array per
    cell) unless ``settings.min_cosine`` is None; other expert columns decide exact duplicates as
    usual; an ``image`` column gives the gallery's thumbnails. The optional int64 columns
    ORDER_COLUMN and ROW_COLUMN set the video order and the gallery's row ids (see their comment).
    Either table may have no rows.

    Every row-level check listed in docs/inputs.md#what-is-refused is applied to the unit's
    rows (messages name the label and rows counted within the unit), unless ``rows_checked``:
    the engine checked the rows where it read them (each batch of a file, or on Spark), so
    they are only converted; duplicate ranks, which only a video's rows together show, are
    checked here either way.

    Args:
        experts: the unit's expert rows.
        predictions: the unit's prediction rows.
        settings: the checked settings (the same for every unit of an evaluation).
        judge_frames: also keep the frame-by-frame view of the scored videos (the report's
            gallery).
        experts_label / predictions_label: how messages name the tables.
        center: the mean subtracted from every vector before the cosine
            (``matching.center=experts``; `evaluator.core.calibration.centred`), or None.
        rows_checked: the rows passed the row checks already (see above).

    Returns:
        The unit's partial (with its gallery frames when ``judge_frames``).

    Raises:
        InputError: a bad value in the unit's rows, or embeddings of different lengths.
    """
    need = settings.min_cosine is not None
    exp = _split(experts_label, experts, "experts", need, rows_checked)
    pred = _split(predictions_label, predictions, "predictions", need, rows_checked)
    n_exp, n_pred = exp.table.video_id.shape[0], pred.table.video_id.shape[0]
    e_emb, p_emb = exp.table.embedding, pred.table.embedding
    if e_emb is not None and p_emb is not None:
        if n_exp and n_pred and e_emb.shape[1] != p_emb.shape[1]:
            raise InputError(
                f"{predictions_label}: column 'embedding': embeddings of different lengths: this "
                f"file has {p_emb.shape[1]}, the experts file {experts_label} has "
                f"{e_emb.shape[1]}; both tables need one length D."
            )
        if not n_exp:
            e_emb = np.zeros((0, p_emb.shape[1]), dtype=np.float32)
        if not n_pred:
            p_emb = np.zeros((0, e_emb.shape[1]), dtype=np.float32)
    codes, uniques = pd.factorize(np.concatenate([exp.table.video_id, pred.table.video_id]))
    codes = codes.astype(np.int64)
    positions = np.arange(n_exp + n_pred, dtype=np.int64)
    if exp.order is not None or pred.order is not None:
        positions = np.concatenate(
            [
                positions[:n_exp] if exp.order is None else exp.order,
                positions[n_exp:] if pred.order is None else pred.order,
            ]
        )
    experts_f = Frames(codes[:n_exp], exp.table.timestamp, e_emb, None, row_key(exp.table.frame))
    model_f = Frames(codes[n_exp:], pred.table.timestamp, p_emb, pred.table.rank)
    return score_frames(
        experts_f,
        model_f,
        np.asarray(uniques, dtype=object),
        _first(codes, positions, uniques.shape[0]),
        settings,
        gallery=(
            FrameSources(exp.row, pred.row, _images(exp.table), _images(pred.table))
            if judge_frames
            else None
        ),
        center=center,
    )


def unit_pool_sums(
    experts: pd.DataFrame | pa.Table,
    settings: PosterSettings,
    *,
    label: str = "experts",
    rows_checked: bool = False,
) -> VectorSums:
    """Per-video sums of the expert pool of one unit's expert rows (all rows of its videos).

    The pass over the experts that ``matching.center=experts`` needs before scoring
    (`evaluator.core.calibration.expert_mean` combines the units' sums).

    Raises:
        InputError: a bad value in the rows (as `score_unit` refuses it, unless
            ``rows_checked``).
    """
    side = _split(label, experts, "experts", True, rows_checked)
    codes, uniques = pd.factorize(side.table.video_id)
    emb = side.table.embedding
    if emb is None:
        emb = np.zeros((codes.shape[0], 0), dtype=np.float32)
    frames = Frames(
        codes.astype(np.int64), side.table.timestamp, emb, None, row_key(side.table.frame)
    )
    return pool_sums(frames, np.asarray(uniques, dtype=object), settings.min_expert_frames)


def _first(codes: np.ndarray, keys: np.ndarray, n: int) -> np.ndarray:
    """The smallest key per code."""
    out = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(out, codes, keys)
    return out


def _images(table: LoadedTable) -> np.ndarray | None:
    """Each row's frame for the report: its image path, or its video path and time."""
    if "image" in table.frame.columns:
        return table.frame["image"].astype("string").fillna("").to_numpy(dtype=object)
    if "video_path" in table.frame.columns:
        from evaluator.io.thumbnails import video_frame_ref

        paths = table.frame["video_path"].astype("string").fillna("").to_numpy(dtype=object)
        return np.array(
            [
                video_frame_ref(p, t) if p else ""
                for p, t in zip(paths, table.timestamp, strict=True)
            ],
            dtype=object,
        )
    return None


def score_frames(
    experts: Frames,
    model: Frames,
    video_ids: np.ndarray,
    order_key: np.ndarray,
    settings: PosterSettings,
    *,
    gallery: FrameSources | None = None,
    center: np.ndarray | None = None,
) -> ScoredSet:
    """The partial of validated frames (codes index ``video_ids``; all rows of each video).

    Args:
        experts / model: the frames (model frames ranked).
        video_ids: str id per code.
        order_key: canonical position per code (`VideoOutcomes.order_key`).
        settings: the checked settings.
        gallery: keep the frame-by-frame view (the report's gallery), reporting these row ids
            and images; None keeps none.
        center: the mean subtracted from every vector before the cosine, or None. The digest
            and the expert pool keep the vectors as read.

    Returns:
        The partial, with the gallery's frames when asked for.
    """
    judge = None if gallery is None else FrameJudge(gallery)
    partial = score_set(
        experts,
        model,
        settings,
        video_ids=video_ids,
        order_key=order_key,
        center=center,
        on_block=None if judge is None else judge.add,
    )
    if judge is None:
        return ScoredSet(partial)
    scored = np.flatnonzero(partial.videos.n_expert_frames >= settings.min_expert_frames)
    return ScoredSet(partial, judge.gallery(scored))


def finish_scored(
    scored: ScoredSet, settings: PosterSettings
) -> tuple[FinishedPoster, GalleryFrames | None]:
    """The full result of a merged `ScoredSet` and its gallery in the canonical video order."""
    order = canonical_order(scored.partial.videos)
    return finish(scored.partial, settings, order), finished_gallery(scored, order)


def score_inputs(
    inputs: PosterInputs,
    settings: PosterSettings,
    *,
    judge_frames: bool,
    center: np.ndarray | None = None,
) -> ScoredSet:
    """The partial of tables loaded whole (`evaluator.io.poster.load_poster_inputs`).

    Their codes are already in the canonical order (first appearance, experts first);
    ``center`` as in `score_frames`.
    """
    return score_frames(
        inputs.experts,
        inputs.model,
        inputs.video_ids,
        np.arange(inputs.n_videos, dtype=np.int64),
        settings,
        gallery=(
            FrameSources(
                expert_image=_images(inputs.expert_table),
                model_image=_images(inputs.prediction_table),
            )
            if judge_frames
            else None
        ),
        center=center,
    )
