"""Slice tables and the forest plot: metrics per slice as frames, PNG and gallery filter data."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluator.core.slices import SliceAssignment, slice_metric_keys

DPI = 110
# Largest number of slices a forest plot shows (the largest slices first, then in order).
MAX_FOREST_ROWS = 60
# Fonts that cover Hangul / CJK, used when installed so such slice names render.
_CJK_FONTS = ("Noto Sans CJK KR", "Noto Sans KR", "NanumGothic", "Malgun Gothic", "AppleGothic")


def slice_keys(assignment: SliceAssignment) -> list[np.ndarray]:
    """Per column, the ``slice/<column>/<value>`` metric-key prefix of each value."""
    return [
        np.asarray(slice_metric_keys(col, values, segs), dtype=object)
        for col, values, segs in zip(
            assignment.columns, assignment.values, assignment.segments, strict=True
        )
    ]


def slice_rows(assignment: SliceAssignment, min_videos: int) -> pd.DataFrame:
    """The identifying columns of a per-slice table, one row per (column, value).

    Columns: ``slice_column``, ``slice_value`` (the text as in the metadata),
    ``metric_key`` (the MLflow metric-name prefix of the slice), ``n_videos``, ``gated``
    (``n_videos >= min_videos``).
    """
    parts = []
    keys = slice_keys(assignment)
    for c, (col, values) in enumerate(zip(assignment.columns, assignment.values, strict=True)):
        n = np.bincount(assignment.codes[:, c], minlength=len(values))
        parts.append(
            pd.DataFrame(
                {
                    "slice_column": pd.Series([col] * len(values), dtype="string"),
                    "slice_value": pd.Series(list(values), dtype="string"),
                    "metric_key": pd.Series(keys[c], dtype="string"),
                    "n_videos": n.astype(np.int64),
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    frame["gated"] = frame["n_videos"] >= int(min_videos)
    return frame


def slice_videos_frame(video_ids: np.ndarray, assignment: SliceAssignment) -> pd.DataFrame:
    """``slice_videos.parquet``: ``video_id`` and each slice column's value, per video.

    The slice columns are pandas categoricals whose categories keep the display order (bins
    in edge order, ``(missing)`` last); parquet keeps them, so a comparison reads them back.
    """
    frame = pd.DataFrame({"video_id": pd.Series(np.asarray(video_ids, dtype=str), dtype="string")})
    for c, (col, values) in enumerate(zip(assignment.columns, assignment.values, strict=True)):
        frame[col] = pd.Categorical.from_codes(assignment.codes[:, c], categories=list(values))
    return frame.sort_values("video_id", kind="stable").reset_index(drop=True)


def _font_families() -> list[str]:
    from matplotlib import font_manager

    have = {f.name for f in font_manager.fontManager.ttflist}
    return ["DejaVu Sans", *[f for f in _CJK_FONTS if f in have]]


def forest_rows(frame: pd.DataFrame, limit: int = MAX_FOREST_ROWS) -> pd.DataFrame:
    """The rows a forest plot shows: all, or the ``limit`` largest slices, in table order."""
    if len(frame) <= limit:
        return frame
    keep = frame["n_videos"].to_numpy().argsort(kind="stable")[::-1][:limit]
    return frame.iloc[np.sort(keep)]


def plot_forest(
    frame: pd.DataFrame,
    value: str,
    low: str,
    high: str,
    path: Path,
    *,
    title: str,
    xlabel: str,
    reference: tuple[float, float, float] | None = None,
    reference_label: str = "all videos",
    marked: Sequence[bool] | np.ndarray | None = None,
) -> None:
    """A forest plot: one row per slice, its value as a dot and its interval as a bar.

    Args:
        frame: the per-slice table (``slice_column``, ``slice_value``, ``n_videos``, ``gated``
            and the three value columns).
        value / low / high: the columns of the point and its interval.
        path: the PNG file.
        title / xlabel: texts.
        reference: (value, low, high) of the whole set, drawn as a line and a band; None = a
            line at 0 (for deltas).
        reference_label: its legend text.
        marked: per row, drawn in red (e.g. a significant regression).
    """
    from evaluator.report.plots import plt  # matplotlib only when a plot is drawn

    rows = forest_rows(frame)
    n = len(rows)
    height = max(2.4, 0.28 * n + 1.4)
    with warnings.catch_warnings(), plt.rc_context({"font.family": _font_families()}):
        warnings.filterwarnings("ignore", message="Glyph .* missing")
        fig, ax = plt.subplots(figsize=(8.0, height))
        y = np.arange(n)[::-1]
        point = rows[value].to_numpy(np.float64)
        lo = rows[low].to_numpy(np.float64)
        hi = rows[high].to_numpy(np.float64)
        gated = rows["gated"].to_numpy(bool)
        red = np.zeros(n, bool) if marked is None else np.asarray(marked, bool)[rows.index]
        colors = np.where(red, "C3", np.where(gated, "C0", "0.6")).tolist()
        if reference is not None:
            ref, ref_lo, ref_hi = reference
            if np.isfinite(ref_lo) and np.isfinite(ref_hi):
                ax.axvspan(ref_lo, ref_hi, color="C2", alpha=0.12, linewidth=0)
            ax.axvline(ref, color="C2", linewidth=1.2, label=f"{reference_label} {ref:.3f}")
        else:
            ax.axvline(0.0, color="0.3", linewidth=1.0)
        ax.hlines(y, lo, hi, colors=colors, linewidth=2)
        ax.scatter(point, y, c=colors, s=22, zorder=3)
        labels = [
            f"{c} = {v} (n={k})"
            for c, v, k in zip(
                rows["slice_column"], rows["slice_value"], rows["n_videos"], strict=True
            )
        ]
        ax.set_yticks(y)
        ax.set_yticklabels(labels, fontsize=8)
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
        shown = "" if n == len(frame) else f" (the {n} largest of {len(frame)} slices)"
        ax.set_title(f"{title}{shown}; grey: below slices.min_videos", fontsize=9)
        if reference is not None:
            ax.legend(loc="lower right", fontsize=8)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
        plt.close(fig)


def gallery_slice_filter(gallery_ids: Sequence[str], slice_videos: pd.DataFrame) -> dict[str, Any]:
    """What the report's gallery needs to filter videos by slice.

    Returns:
        ``{"columns": [...], "values": [[...] per column], "codes": [[code per gallery video]
        per column]}``; code -1 for a video without a row (never for eligible videos).
    """
    index = pd.Index(slice_videos["video_id"].astype(str))
    rows = index.get_indexer(pd.Index([str(v) for v in gallery_ids]))
    columns = [c for c in slice_videos.columns if c != "video_id"]
    values, codes = [], []
    for col in columns:
        cat = slice_videos[col].astype("category")
        values.append([str(v) for v in cat.cat.categories])
        code = cat.cat.codes.to_numpy(np.int64)
        codes.append(np.where(rows >= 0, code[np.maximum(rows, 0)], -1).tolist())
    return {"columns": columns, "values": values, "codes": codes}


# Largest number of slice rows the report's table shows.
MAX_REPORT_ROWS = 200


def slices_section(
    table: pd.DataFrame, gallery: dict[str, Any], k_max: int, confidence: float | None
) -> str:
    """The report's "Slices" section: a table of recall@K per slice linking to the gallery.

    Each row's slice name filters the gallery to that slice. Slices smaller than
    ``slices.min_videos`` are greyed (reported, never gated). The forest plot itself is one
    of the report's plots.
    """
    import html

    k = f"recall_at_{k_max}"
    lookup = {
        (col, val): f"{c}:{code}"
        for c, col in enumerate(gallery["columns"])
        for code, val in enumerate(gallery["values"][c])
    }
    shown = table.head(MAX_REPORT_ROWS)
    level = "" if confidence is None else f" ({confidence:.0%} CI)"

    def num(x: Any) -> str:
        return "–" if x is None or not np.isfinite(float(x)) else f"{float(x):.3f}"

    rows = []
    for r in shown.itertuples(index=False):  # at most MAX_REPORT_ROWS slices
        d = r._asdict()
        col, val = str(d["slice_column"]), str(d["slice_value"])
        target = lookup.get((col, val), "")
        rows.append(
            f'<tr class="{"" if d["gated"] else "small"}"><td>{html.escape(col)}</td><td>'
            f'<a href="#gallery" data-slice="{target}">{html.escape(val)}</a></td>'
            f'<td class="num">{int(d["n_videos"])}</td><td class="num">{num(d[k])}</td>'
            f'<td class="num">{num(d[k + "_ci_low"])} – {num(d[k + "_ci_high"])}</td>'
            f'<td class="num">{num(d[f"mrr_at_{k_max}"])}</td></tr>'
        )
    more = (
        f"<p class='sub'>The first {MAX_REPORT_ROWS} of {len(table)} slices; all are in "
        f"slices.parquet.</p>"
        if len(table) > MAX_REPORT_ROWS
        else ""
    )
    return (
        '<section id="slices"><h2>Slices</h2><p class="sub">recall@' + str(k_max) + " per slice "
        "of the metadata; grey rows are below slices.min_videos (reported, never gated). Click a "
        "value to show its videos.</p><table class='slices'><tr><th>column</th><th>value</th>"
        f"<th>videos</th><th>recall@{k_max}</th><th>interval{level}</th><th>MRR@{k_max}</th></tr>"
        + "".join(rows)
        + "</table>"
        + more
        + "</section>"
    )
