"""Tables whose frames are image files or (video file, timestamp): paths checked, vectors computed.

Paths in the ``image`` and ``video_path`` columns are relative to ``data.image_root`` (default:
the folder of the table that names them); a path that resolves outside the root is refused.
The vectors come from `evaluator.embed` through its on-disk cache, so evaluating a second model
on the same expert set embeds only the new frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from evaluator.embed import EmbeddingCache, FrameReadError, FrameRef, embed_frames
from evaluator.embed.backbone import Embedder
from evaluator.io.tables import check_rows, column_error


def frame_refs(path: Path, frame: pd.DataFrame, image_root: Path | None) -> list[FrameRef]:
    """One FrameRef per row, from the ``image`` column or ``video_path`` + ``timestamp``.

    Raises:
        InputError: a missing path, or a path that leaves the image root.
    """
    root = (image_root if image_root is not None else path.parent).resolve()
    column = "image" if "image" in frame.columns else "video_path"
    values = frame[column]
    missing = values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
    check_rows(missing, path, column, "missing file path", frame)
    resolved = [(root / str(v)).resolve() for v in values]
    outside = np.array([not p.is_relative_to(root) for p in resolved])
    check_rows(outside, path, column, f"path leaves the image root {root} (data.image_root)", frame)
    if column == "image":
        return [FrameRef(image=str(p)) for p in resolved]
    ts = frame["timestamp"].to_numpy(dtype=np.float64)
    return [FrameRef(video=str(p), timestamp=float(t)) for p, t in zip(resolved, ts, strict=True)]


@dataclass
class TableEmbedder:
    """Computes the vectors of image/video tables with one embedder and one cache.

    Attributes:
        embedder: the backbone.
        cache: the embedding cache, or None.
        image_root: base folder of relative paths (None = each table's folder).
        n_computed / n_cached: distinct frames embedded now / found in the cache, summed over
            the tables seen.
    """

    embedder: Embedder
    cache: EmbeddingCache | None
    image_root: Path | None = None
    n_computed: int = 0
    n_cached: int = 0
    tables: list[str] = field(default_factory=list)

    def __call__(self, path: Path, frame: pd.DataFrame) -> np.ndarray:
        refs = frame_refs(path, frame, self.image_root)
        column = "image" if "image" in frame.columns else "video_path"
        try:
            vectors, stats = embed_frames(refs, self.embedder, self.cache)
        except FrameReadError as exc:
            rows = np.array([exc.index] if exc.index >= 0 else [], dtype=np.int64)
            raise column_error(
                path,
                column,
                f"unreadable {'image' if column == 'image' else 'video'} file {exc.path} ({exc})",
                rows,
                frame,
            ) from None
        self.n_computed += stats.n_computed
        self.n_cached += stats.n_cached
        self.tables.append(str(path))
        return vectors
