"""The local engine: every video scored in this process, within ``engine.memory_budget_mb``.

Two ways in, one result (`Scored`):

- `stream_sources`: parquet inputs (a file, a directory of part files, a glob), read in
  batches and cut into work units that fit the budget (`evaluator.engines.streaming`).
- `score_poster`: tables already loaded whole (CSV / JSONL files, in-memory frames of the
  ``mlflow.models.evaluate`` plugin, vectors computed by an image embedder).

Both score through `evaluator.engines.units` and `evaluator.core.partials`, so their numbers
(and their galleries) are the same to the last bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluator.core.calibration import expert_mean, pool_sums
from evaluator.core.partials import FinishedPoster
from evaluator.core.poster import PosterSettings
from evaluator.engines.streaming import StreamStats, stream_poster
from evaluator.engines.units import finish_scored, score_inputs
from evaluator.errors import InputError
from evaluator.io.poster import LoadedTable, PosterInputs
from evaluator.io.sources import Source
from evaluator.report.gallery import GalleryFrames, cap_gallery


@dataclass(frozen=True)
class TableInfo:
    """What the record says about one input table.

    Attributes:
        path: the table as given (file, directory or glob); names it in messages and titles.
        resolved: the absolute path for the run's params (the name, for in-memory tables).
        columns: its column names.
        rank_source: "rank" or "score" (predictions), "" (experts).
        in_memory: True for a DataFrame handed over in memory (no file).
        location: with ``engine=spark``, the source string Spark read (a URI, a folder of part
            files, ``table:NAME``); it names the table in summary.json and the dataset input.
        folder: the default root of its ``image`` paths.
    """

    path: Path
    resolved: str
    columns: tuple[str, ...]
    rank_source: str = ""
    in_memory: bool = False
    location: str | None = None

    @property
    def name(self) -> str:
        """The table as the user gave it (Spark's source string, or the path)."""
        return self.location if self.location is not None else str(self.path)

    @property
    def folder(self) -> Path:
        return self.path if self.path.is_dir() else self.path.parent


@dataclass(frozen=True)
class Scored:
    """An engine's answer: the finished numbers and what was read.

    Attributes:
        finished: the result over all videos (`evaluator.core.partials.FinishedPoster`).
        experts / predictions: the input tables.
        embedding_dim: the vectors' length D, or None when time-only.
        stats: how the work was cut into units (None when the tables were loaded whole).
        center: the mean subtracted from every vector before the cosine
            (``matching.center=experts``), or None.
        gallery: the report gallery's frames (video codes of ``finished``), or None when the
            frame view was not kept.
    """

    finished: FinishedPoster
    experts: TableInfo
    predictions: TableInfo
    embedding_dim: int | None
    stats: StreamStats | None = None
    center: np.ndarray | None = None
    gallery: GalleryFrames | None = None


def _info(table: LoadedTable) -> TableInfo:
    resolved = str(table.path) if table.in_memory else str(table.path.resolve())
    return TableInfo(
        table.path, resolved, tuple(table.frame.columns), table.rank_source, table.in_memory
    )


def _source_info(source: Source, columns: tuple[str, ...], rank_source: str = "") -> TableInfo:
    return TableInfo(source.label, str(source.label.resolve()), columns, rank_source)


def require_eligible(
    finished: FinishedPoster, settings: PosterSettings, experts: Path | str, what: str = "file"
) -> None:
    """Refuse an evaluation in which no video has enough expert frames to be scored.

    Raises:
        InputError: naming the experts ``what`` (file or table) and the most frames any
            video has.
    """
    result = finished.result
    if result.metrics["n_videos_eligible"] == 0:
        most = int(result.n_expert_frames.max(initial=0))
        raise InputError(
            f"{experts}: no video has at least metrics.min_expert_frames="
            f"{settings.min_expert_frames} expert frames (the most any video has is {most}), so "
            f"there is nothing to score; lower metrics.min_expert_frames or check the {what}."
        )


def score_poster(
    inputs: PosterInputs,
    settings: PosterSettings,
    *,
    judge_frames: bool,
    max_gallery_videos: int | None = None,
    center: str = "off",
) -> Scored:
    """Score tables loaded whole (one unit).

    Args:
        inputs: the validated expert and prediction tables.
        settings: the checked matching / metric / sweep settings.
        judge_frames: also judge every considered frame (the HTML report's gallery).
        max_gallery_videos: gallery videos kept (None: all).
        center: ``matching.center`` (``experts``: subtract the expert pool's mean vector).

    Returns:
        The scored evaluation.

    Raises:
        InputError: no video has enough expert frames to be scored.
    """
    emb = inputs.experts.embedding
    dim = None if emb is None or settings.min_cosine is None else int(emb.shape[1])
    mean = None
    if center == "experts" and dim is not None:
        sums = pool_sums(inputs.experts, inputs.video_ids, settings.min_expert_frames)
        mean = expert_mean([sums], dim)
    scored = score_inputs(inputs, settings, judge_frames=judge_frames, center=mean)
    finished, gallery = finish_scored(cap_gallery(scored, max_gallery_videos), settings)
    require_eligible(finished, settings, inputs.expert_table.path)
    return Scored(
        finished,
        _info(inputs.expert_table),
        _info(inputs.prediction_table),
        dim,
        center=mean,
        gallery=gallery,
    )


def stream_sources(
    experts: Source,
    predictions: Source,
    settings: PosterSettings,
    *,
    budget_mb: float,
    temp_dir: str | None,
    judge_frames: bool,
    want_images: bool,
    max_gallery_videos: int | None = None,
    center: str = "off",
) -> Scored:
    """Score parquet inputs in bounded memory (`evaluator.engines.streaming.stream_poster`).

    Args:
        experts / predictions: the resolved parquet sources.
        settings: the checked settings.
        budget_mb: ``engine.memory_budget_mb``.
        temp_dir: ``engine.temp_dir`` (None: the system's temporary folder).
        judge_frames: keep the report gallery's frame view.
        want_images: read the ``image`` column for the gallery's thumbnails.
        max_gallery_videos: gallery videos kept (None: all).
        center: ``matching.center`` (``experts``: subtract the expert pool's mean vector).

    Returns:
        The scored evaluation.

    Raises:
        InputError: bad input, no eligible video, or no space left for temporary buckets.
    """
    streamed = stream_poster(
        experts,
        predictions,
        settings,
        budget_bytes=int(budget_mb * 2**20),
        temp_dir=temp_dir,
        judge_frames=judge_frames,
        want_images=want_images,
        max_gallery_videos=max_gallery_videos,
        center=center,
    )
    label = experts.files[0] if experts.is_single_file else experts.label
    require_eligible(streamed.finished, settings, label)
    pred_schema = streamed.predictions.schema
    return Scored(
        streamed.finished,
        _source_info(experts, tuple(streamed.experts.schema.names)),
        _source_info(
            predictions,
            tuple(pred_schema.names),
            "rank" if "rank" in pred_schema.names else "score",
        ),
        streamed.embedding_dim,
        streamed.stats,
        streamed.center,
        streamed.gallery,
    )
