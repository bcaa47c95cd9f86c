"""Tables whose frames are image files or (video file, timestamp): paths checked, vectors computed.

Paths in the ``image`` and ``video_path`` columns are relative to ``data.image_root`` (default:
the folder of the table that names them); a path that leaves the root lexically (``..``, or an
absolute path elsewhere) is refused, while a symbolic link inside the root is the user's own
choice and followed. The vectors come from `evaluator.embed` through its on-disk cache, so
evaluating a second model on the same expert set embeds only the new frames; only the frames
that can change a number are embedded (`evaluator.core.candidates`), both tables in one pass so
that each file is hashed and decoded once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from evaluator.core.candidates import frames_to_embed
from evaluator.core.frames import Frames
from evaluator.embed import EmbeddingCache, FrameReadError, FrameRef, embed_frames
from evaluator.embed.backbone import Embedder
from evaluator.embed.decode import FrameTable
from evaluator.io.rules import MISSING_FILE_PATH
from evaluator.io.tables import check_rows, column_error

MILLISECONDS_HINT = (
    "timestamps are seconds from the start of the video; values in milliseconds are the common "
    "cause"
)


def _lexical(path: Path) -> Path:
    """``path`` made absolute with ``..`` and ``.`` removed, symbolic links left as they are."""
    return Path(os.path.normpath(os.path.abspath(path)))


def frame_refs(path: Path, frame: pd.DataFrame, image_root: Path | None) -> list[FrameRef]:
    """One FrameRef per row, from the ``image`` column or ``video_path`` + ``timestamp``.

    Raises:
        InputError: a missing path, or a path that leaves the image root.
    """
    root = _lexical(image_root if image_root is not None else path.parent)
    column = "image" if "image" in frame.columns else "video_path"
    values = frame[column]
    missing = values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
    check_rows(missing, path, column, MISSING_FILE_PATH, frame)
    resolved = [_lexical(root / str(v)) for v in values]
    outside = np.array([not p.is_relative_to(root) for p in resolved])
    check_rows(outside, path, column, f"path leaves the image root {root} (data.image_root)", frame)
    if column == "image":
        return [FrameRef(image=str(p)) for p in resolved]
    ts = frame["timestamp"].to_numpy(dtype=np.float64)
    return [FrameRef(video=str(p), timestamp=float(t)) for p, t in zip(resolved, ts, strict=True)]


def check_video_ends(
    path: Path, frame: pd.DataFrame, refs: list[FrameRef]
) -> dict[str, FrameTable]:
    """Refuse timestamps past the end of their video (by more than one frame's duration).

    Returns:
        Each video's frames (`evaluator.embed.decode.probe_video`), for its decoder.

    Raises:
        InputError: an unreadable video (column ``video_path``), or rows whose timestamp lies
            past the end (column ``timestamp``; the message names milliseconds as the cause).
    """
    from evaluator.embed.decode import probe_video

    if not refs or refs[0].video is None:
        return {}
    tables: dict[str, FrameTable] = {}
    ends: dict[str, float] = {}
    for row, ref in enumerate(refs):
        video = ref.path
        if video not in ends:
            try:
                tables[video] = probe_video(video)
                ends[video] = tables[video].end_s
            except FrameReadError as exc:
                raise column_error(
                    path,
                    "video_path",
                    f"unreadable video file {video} ({exc})",
                    np.array([row]),
                    frame,
                ) from None
    end = np.array([ends[ref.path] for ref in refs])
    ts = np.array([float(ref.timestamp or 0.0) for ref in refs])
    past = ts > end
    if past.any():
        worst = int(np.argmax(np.where(past, ts - end, -np.inf)))
        check_rows(
            past,
            path,
            "timestamp",
            f"timestamp past the end of its video (e.g. {ts[worst]:g} s in "
            f"{refs[worst].path}, which ends at {end[worst]:.3f} s); {MILLISECONDS_HINT}",
            frame,
            context=("video_id", "video_path"),
        )
    return tables


@dataclass
class TableEmbedder:
    """Computes the vectors of image/video tables with one embedder and one cache.

    Attributes:
        embedder: the backbone.
        cache: the embedding cache, or None.
        image_root: base folder of relative paths (None = each table's folder).
        window_s: the largest time tolerance in use (`evaluator.core.candidates`); None
            embeds every frame.
        k_max / min_expert_frames: the settings the candidate filter applies.
        keep_all_experts: embed every expert frame of the videos that can be eligible
            (``matching.center=experts``).
        n_computed / n_cached: distinct frames embedded now / found in the cache, summed over
            the tables seen.
        n_not_embedded: distinct frames of the tables that got no vector (they can change no
            number).
        n_decoded: video frames decoded (None: not counted, as on Spark's executors).
        seconds: wall time of the embedding (hashing, decoding, the model).
    """

    embedder: Embedder
    cache: EmbeddingCache | None
    image_root: Path | None = None
    window_s: float | None = None
    k_max: int = 10
    min_expert_frames: int = 1
    keep_all_experts: bool = False
    n_computed: int = 0
    n_cached: int = 0
    n_not_embedded: int = 0
    n_decoded: int | None = 0
    seconds: float = 0.0
    tables: list[str] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        """The embedding's counts and speed, by metric name (docs/metrics.md)."""
        fps = self.n_computed / self.seconds if self.seconds > 0 else float("nan")
        out = {
            "n_embeddings_computed": float(self.n_computed),
            "n_embeddings_cached": float(self.n_cached),
            "n_frames_not_embedded": float(self.n_not_embedded),
            "embedding_seconds": float(self.seconds),
            "embedding_frames_per_s": fps,
        }
        if self.n_decoded is not None:
            out["n_frames_decoded"] = float(self.n_decoded)
        return out

    def _embed(
        self, refs: list[FrameRef], label: str, tables: dict[str, FrameTable]
    ) -> tuple[np.ndarray, object]:
        vectors, stats = embed_frames(
            refs, self.embedder, self.cache, label=label, frame_tables=tables
        )
        self.n_computed += stats.n_computed
        self.n_cached += stats.n_cached
        self.n_decoded = (self.n_decoded or 0) + stats.n_decoded
        self.seconds += stats.seconds
        return vectors, stats

    def __call__(self, path: Path, frame: pd.DataFrame) -> np.ndarray:
        """Every frame of one table, embedded."""
        refs = frame_refs(path, frame, self.image_root)
        tables = check_video_ends(path, frame, refs)
        column = "image" if "image" in frame.columns else "video_path"
        try:
            vectors, _ = self._embed(refs, path.name, tables)
        except FrameReadError as exc:
            rows = np.array([exc.index] if exc.index >= 0 else [], dtype=np.int64)
            raise _unreadable(path, column, exc, rows, frame) from None
        self.tables.append(str(path))
        return vectors

    def embed_tables(
        self, experts, predictions, expert_frames: Frames, model_frames: Frames, n_videos: int
    ):
        """Both tables' vectors, in one pass over their files; frames that can change no
        number get a zero vector (with ``window_s`` set).

        Args:
            experts / predictions: the validated tables (`evaluator.io.poster.LoadedTable`).
            expert_frames / model_frames: their frames with shared video codes (no vectors).
            n_videos: the number of video codes.

        Returns:
            The two tables with their ``embedding`` set.

        Raises:
            InputError: a path leaving the root, an unreadable file, a timestamp past the end.
        """
        tables = (experts, predictions)
        refs = [frame_refs(t.path, t.frame, self.image_root) for t in tables]
        probed: dict[str, FrameTable] = {}
        for t, r in zip(tables, refs, strict=True):
            probed.update(check_video_ends(t.path, t.frame, r))
        content = {ref: i for i, ref in enumerate(dict.fromkeys(refs[0]))}
        if self.window_s is None:
            need = [np.ones(len(r), dtype=bool) for r in refs]
        else:
            found = frames_to_embed(
                expert_frames,
                model_frames,
                n_videos,
                expert_content=np.array([content[r] for r in refs[0]], dtype=np.int64),
                k_max=self.k_max,
                min_expert_frames=self.min_expert_frames,
                window_s=self.window_s,
                keep_all_experts=self.keep_all_experts,
            )
            need = [found.experts, found.model]
        wanted = dict.fromkeys(
            r for rs, ns in zip(refs, need, strict=True) for r, n in zip(rs, ns, strict=True) if n
        )
        self.n_not_embedded += len(set(refs[0]) | set(refs[1])) - len(wanted)
        # Where each distinct frame is first used, for errors.
        first: dict[FrameRef, tuple[int, int]] = {}
        for which, table_refs in enumerate(refs):
            for row, ref in enumerate(table_refs):
                first.setdefault(ref, (which, row))
        order = list(wanted)
        label = " + ".join(dict.fromkeys(t.path.name for t in tables))
        try:
            vectors, _ = self._embed(order, label, probed)
        except FrameReadError as exc:
            which, row = first[order[exc.index]] if exc.index >= 0 else (0, -1)
            t = tables[which]
            column = "image" if "image" in t.frame.columns else "video_path"
            bad = np.array([row] if row >= 0 else [], dtype=np.int64)
            raise _unreadable(t.path, column, exc, bad, t.frame) from None
        position = {r: i for i, r in enumerate(order)}
        out = []
        for t, rs in zip(tables, refs, strict=True):
            emb = np.zeros((len(rs), self.embedder.dim), dtype=np.float32)
            filled = [i for i, r in enumerate(rs) if r in position]
            if filled:
                emb[filled] = vectors[[position[rs[i]] for i in filled]]
            out.append(replace(t, embedding=emb))
            self.tables.append(str(t.path))
        return out[0], out[1]


def _unreadable(path: Path, column: str, exc: FrameReadError, rows, frame):
    kind = "image" if column == "image" else "video"
    return column_error(path, column, f"unreadable {kind} file {exc.path} ({exc})", rows, frame)
