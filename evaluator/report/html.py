"""``report.html``: one self-contained page a person can read to decide on a model.

The page holds the headline numbers with their intervals, the plots (PNG, inline) and a gallery
of the scored videos, misses first: per video the expert frames and the model's ranked frames on
a timeline strip (and as thumbnails when the tables name image files), each model frame marked
hit / near miss with its time difference and cosine, and the miss reason. A search box (video id)
and a filter (hits, misses, miss reason) narrow the gallery.

Everything is in the one file: the data as one JSON blob, rendered a page at a time by plain
JavaScript, so the page opens offline and inside MLflow's artifact viewer (an iframe that allows
scripts), and stays quick at tens of thousands of videos. It loads nothing from the network.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluator import __version__
from evaluator.core.bootstrap import BootstrapResult
from evaluator.core.matching import MISS_REASONS
from evaluator.core.partials import FinishedPoster
from evaluator.core.poster import PosterSettings, SweepResult
from evaluator.io.outputs import Writer
from evaluator.io.thumbnails import (
    VIDEO_TIME,
    resolve_image,
    thumbnail_data_uri,
    video_thumbnails,
)
from evaluator.report.gallery import FRAME_STATUSES, FrameMatches, GalleryFrames, gallery_order
from evaluator.report.html_template import TEMPLATE
from evaluator.report.slices import gallery_slice_filter, slices_section


@dataclass(frozen=True)
class DrawnPoster:
    """What the plots and the report read of a finished evaluation (see `drawn_poster`).

    The drawing worker is handed this, not the `FinishedPoster`, so what it reads is explicit:
    of the per-video outcomes only the three arrays of the pairs plot, and the gallery's videos
    (at most ``report.max_gallery_videos``) with their frames.

    Attributes:
        settings / metrics / recall_curve / sweep: as in `PosterResult`.
        miss_reason / nearest_dt / nearest_cosine: per eligible video (`VideoMatches`).
        frames: the gallery's frame view (`FrameMatches`), or None when it was not kept.
        gallery_ids: str id per gallery video, aligned with ``frames.videos``.
        gallery_first_hit / gallery_miss_reason: per gallery video, aligned likewise.
        model_image / expert_image: image path per frame of ``frames``, or None.
    """

    settings: PosterSettings
    metrics: dict[str, float]
    recall_curve: np.ndarray
    sweep: SweepResult | None
    miss_reason: np.ndarray
    nearest_dt: np.ndarray
    nearest_cosine: np.ndarray
    frames: FrameMatches | None
    gallery_ids: np.ndarray
    gallery_first_hit: np.ndarray
    gallery_miss_reason: np.ndarray
    model_image: np.ndarray | None = None
    expert_image: np.ndarray | None = None


def drawn_poster(finished: FinishedPoster, gallery: GalleryFrames | None) -> DrawnPoster:
    """The part of ``finished`` and its ``gallery`` the plots and the report read."""
    result = finished.result
    m = result.matches
    fm = None if gallery is None else gallery.frames
    shown = np.zeros(0, dtype=np.int64) if fm is None else fm.videos
    at = np.searchsorted(m.videos, shown)
    return DrawnPoster(
        settings=result.settings,
        metrics=result.metrics,
        recall_curve=result.recall_curve,
        sweep=result.sweep,
        miss_reason=m.miss_reason,
        nearest_dt=m.nearest_dt,
        nearest_cosine=m.nearest_cosine,
        frames=fm,
        gallery_ids=np.asarray(finished.video_ids[shown]).astype(str),
        gallery_first_hit=m.first_hit_rank[at],
        gallery_miss_reason=m.miss_reason[at],
        model_image=None if gallery is None else gallery.model_image,
        expert_image=None if gallery is None else gallery.expert_image,
    )


@dataclass(frozen=True)
class ReportInputs:
    """What the report is made of.

    Attributes:
        title: the model's name (the run name).
        drawn: the evaluation, as far as the plots and the report read it (`drawn_poster`).
        summary: the content of summary.json (metrics by name).
        intervals: the bootstrap intervals of recall@k, or None.
        expert_root / prediction_root: base folders of each table's ``image`` paths.
        slices: the per-slice table (``slices.parquet``), or None.
        slice_videos: each scored video's slice per column, or None.
    """

    title: str
    drawn: DrawnPoster
    summary: dict[str, Any]
    intervals: BootstrapResult | None
    expert_root: Path = Path(".")
    prediction_root: Path = Path(".")
    slices: pd.DataFrame | None = None
    slice_videos: pd.DataFrame | None = None


@dataclass(frozen=True)
class ReportOptions:
    """How the gallery is built.

    Attributes:
        page_size: videos rendered per gallery page.
        thumbnail_px: thumbnail height in pixels (0 = timelines only).
        max_thumbnail_videos: videos, in gallery order, that get thumbnails.
    """

    page_size: int = 50
    thumbnail_px: int = 96
    max_thumbnail_videos: int = 300


def _round(values: np.ndarray, digits: int) -> list[float | None]:
    """Rounded floats for JSON, NaN/inf as None (vectorized: one conversion per array)."""
    out = np.round(np.asarray(values, dtype=np.float64), digits).astype(object)
    out[~np.isfinite(np.asarray(values, dtype=np.float64))] = None
    return out.tolist()


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated index ranges [start, start + length) (no Python loop)."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + (np.arange(total) - offsets)


class _Thumbnails:
    """Thumbnails of one table's ``image`` paths, made once per distinct file."""

    def __init__(self, paths: np.ndarray, root: Path, height_px: int, store: list[str]):
        self.paths = paths
        self.root = root
        self.height_px = height_px
        self.store = store
        self.index: dict[Path, int] = {}
        self.videos: dict[str, str | None] = {}  # video frame name -> data URI
        self.video_index: dict[str, int] = {}

    def prefetch(self, frames: np.ndarray) -> None:
        """Decode the video frames among ``frames`` now, each video file once."""
        refs = [str(self.paths[f] or "") for f in frames.tolist()]
        refs = [r for r in refs if VIDEO_TIME in r]
        if refs:
            self.videos.update(video_thumbnails(self.root, refs, self.height_px))

    def get(self, frame: int) -> int:
        """Index of the frame's thumbnail in the shared store, -1 when it has none."""
        relative = str(self.paths[frame] or "")
        if VIDEO_TIME in relative:
            if relative not in self.video_index:
                uri = self.videos.get(relative)
                self.video_index[relative] = -1 if uri is None else len(self.store)
                if uri is not None:
                    self.store.append(uri)
            return self.video_index[relative]
        path = resolve_image(self.root, relative) if relative else None
        if path is None:
            return -1
        if path not in self.index:
            uri = thumbnail_data_uri(path, self.height_px)
            self.index[path] = -1 if uri is None else len(self.store)
            if uri is not None:
                self.store.append(uri)
        return self.index[path]


def gallery_data(ri: ReportInputs, options: ReportOptions) -> dict[str, Any]:
    """The gallery as columnar JSON-ready data, videos in display order (misses first).

    ``cols`` holds one list per field: per video ``id``, ``hit`` (rank of the first hit, 0 =
    miss), ``why`` (miss reason), ``eo`` / ``mo`` (offsets of its expert / model frames, n + 1
    entries); per expert frame ``e_ts``, ``e_hit`` (matched 0/1), ``e_th``; per model frame
    ``m_rank``, ``m_ts``, ``m_st`` (status index), ``m_dt``, ``m_cos``, ``m_et`` (paired expert
    timestamp), ``m_th``. Thumbnails (``*_th``) index ``thumbs`` (-1: none). Columns keep the
    file small and are built without a Python loop per video; the page expands only the videos
    it shows (`gallery_videos` does the same in Python).
    """
    drawn = ri.drawn
    fm = drawn.frames
    if fm is None:
        raise ValueError("the report needs the frame view: score with judge_frames=True")
    # The gallery's videos: all scored videos, or the first of them in display order when
    # the gallery is capped (report.max_gallery_videos).
    shown_videos = fm.videos
    n = shown_videos.shape[0]
    first_hit = drawn.gallery_first_hit
    reasons = np.asarray(MISS_REASONS, dtype=object)[drawn.gallery_miss_reason]
    ids = drawn.gallery_ids
    order = gallery_order(first_hit, drawn.gallery_miss_reason, ids)
    # Frames come grouped by video, in the order of ``shown_videos``; reorder the groups.
    m_split = np.searchsorted(_positions(fm.model_video, shown_videos), np.arange(n + 1))
    e_split = np.searchsorted(_positions(fm.expert_video, shown_videos), np.arange(n + 1))
    m_len = np.diff(m_split)[order]
    e_len = np.diff(e_split)[order]
    mi = _ranges(m_split[:-1][order], m_len)
    ei = _ranges(e_split[:-1][order], e_len)

    thumbs: list[str] = []
    e_th = np.full(ei.shape[0], -1, dtype=np.int64)
    m_th = np.full(mi.shape[0], -1, dtype=np.int64)
    if (
        options.thumbnail_px > 0
        and drawn.expert_image is not None
        and drawn.model_image is not None
    ):
        exp_thumbs = _Thumbnails(drawn.expert_image, ri.expert_root, options.thumbnail_px, thumbs)
        pred_thumbs = _Thumbnails(
            drawn.model_image, ri.prediction_root, options.thumbnail_px, thumbs
        )
        # Thumbnails only for the first videos shown: a bounded number of files.
        shown = max(0, min(n, int(options.max_thumbnail_videos)))
        exp_thumbs.prefetch(ei[: int(e_len[:shown].sum())])
        pred_thumbs.prefetch(mi[: int(m_len[:shown].sum())])
        for j in range(int(e_len[:shown].sum())):
            e_th[j] = exp_thumbs.get(int(ei[j]))
        for j in range(int(m_len[:shown].sum())):
            m_th[j] = pred_thumbs.get(int(mi[j]))

    cols = {
        "id": ids[order].tolist(),
        "hit": first_hit[order].tolist(),
        "why": [str(r) for r in reasons[order].tolist()],
        "eo": np.concatenate([[0], np.cumsum(e_len)]).tolist(),
        "mo": np.concatenate([[0], np.cumsum(m_len)]).tolist(),
        "e_ts": _round(fm.expert_timestamp[ei], 3),
        "e_hit": fm.expert_matched[ei].astype(int).tolist(),
        "e_th": e_th.tolist(),
        "m_rank": fm.model_rank[mi].tolist(),
        "m_ts": _round(fm.model_timestamp[mi], 3),
        "m_st": fm.model_status[mi].tolist(),
        "m_dt": _round(fm.model_dt[mi], 3),
        "m_cos": _round(fm.model_cosine[mi], 3),
        "m_et": _round(fm.model_expert_timestamp[mi], 3),
        "m_th": m_th.tolist(),
    }
    return {"cols": cols, "thumbs": thumbs}


def gallery_videos(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The columnar gallery expanded per video, as the page does for the videos it shows.

    Each video: ``id``, ``hit``, ``why``, ``e`` ([timestamp, matched, thumbnail] per expert
    frame), ``m`` ([rank, timestamp, status, dt, cosine, paired expert timestamp, thumbnail]
    per model frame).
    """
    c = data["cols"]
    out = []
    for i, vid in enumerate(c["id"]):
        e = range(c["eo"][i], c["eo"][i + 1])
        mm = range(c["mo"][i], c["mo"][i + 1])
        out.append(
            {
                "id": vid,
                "hit": c["hit"][i],
                "why": c["why"][i],
                "e": [[c["e_ts"][j], c["e_hit"][j], c["e_th"][j]] for j in e],
                "m": [
                    [
                        c["m_rank"][j],
                        c["m_ts"][j],
                        c["m_st"][j],
                        c["m_dt"][j],
                        c["m_cos"][j],
                        c["m_et"][j],
                        c["m_th"][j],
                    ]
                    for j in mm
                ],
            }
        )
    return out


def _positions(video_codes: np.ndarray, scored: np.ndarray) -> np.ndarray:
    """Position in ``scored`` of each frame's video code (frames are grouped in that order)."""
    lookup = np.full(int(max(video_codes.max(initial=-1), scored.max(initial=-1))) + 1, -1)
    lookup[scored] = np.arange(scored.shape[0])
    return lookup[video_codes]


def _headline(ri: ReportInputs) -> list[dict[str, Any]]:
    s = ri.drawn.settings
    metrics = ri.summary["metrics"]
    k = s.k_max
    cards = []
    for j in s.report_ks:
        name = f"recall_at_{j}"
        cards.append(
            {
                "name": name,
                "label": f"recall@{j}",
                "value": metrics.get(name),
                "low": metrics.get(f"{name}_ci_low"),
                "high": metrics.get(f"{name}_ci_high"),
            }
        )
    for name, label in (
        (f"mrr_at_{k}", f"MRR@{k}"),
        (f"precision_at_{k}", f"precision@{k}"),
        (f"expert_coverage_at_{k}", f"expert coverage@{k}"),
    ):
        cards.append({"name": name, "label": label, "value": metrics.get(name)})
    return cards


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    return f"{float(value):.3f}"


def build_report_html(ri: ReportInputs, options: ReportOptions, plot_pngs: dict[str, bytes]) -> str:
    """The whole report as one HTML string (no external resources).

    Args:
        ri: the evaluation.
        options: gallery options.
        plot_pngs: plot name -> PNG bytes, shown inline in this order.
    """
    s = ri.drawn.settings
    metrics = ri.summary["metrics"]
    confidence = None if ri.intervals is None else ri.intervals.confidence
    data = gallery_data(ri, options)
    payload = {
        "title": ri.title,
        "settings": {
            "time_tolerance_s": s.time_tolerance_s,
            "min_cosine": s.min_cosine,
            "k_max": s.k_max,
            "min_expert_frames": s.min_expert_frames,
        },
        "statuses": list(FRAME_STATUSES),
        "reasons": [r for r in MISS_REASONS if r],
        "page_size": max(1, int(options.page_size)),
        **data,
    }
    slices_html = ""
    if ri.slices is not None and ri.slice_videos is not None:
        payload["slices"] = gallery_slice_filter(data["cols"]["id"], ri.slice_videos)
        slices_html = slices_section(ri.slices, payload["slices"], s.k_max, confidence)
    blob = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    # Inside <script>: no "</script>" or "<!--" can come out of a JSON string this way.
    blob = blob.replace("<", "\\u003c")
    return (
        TEMPLATE.replace("__TITLE__", html.escape(ri.title))
        .replace("__SETTINGS__", html.escape(_settings_line(s)))
        .replace("__META__", html.escape(_meta_line(ri.summary)))
        .replace("__WARNINGS__", _warnings_html(ri.summary.get("warnings", ())))
        .replace("__CARDS__", _cards_html(ri, confidence))
        .replace("__COUNTS__", _counts_html(s, metrics))
        .replace("__REASONS__", _reasons_html(data["cols"]["why"], metrics))
        .replace("__PLOTS__", _plots_html(plot_pngs))
        .replace("__SLICES__", slices_html)
        .replace("__DATA__", blob)
    )


def _settings_line(s: PosterSettings) -> str:
    theta = "off (time only)" if s.min_cosine is None else f"{s.min_cosine:g}"
    return (
        f"match: |dt| ≤ {s.time_tolerance_s:g} s and cosine ≥ {theta}; first {s.k_max} model "
        f"frames per video; videos with ≥ {s.min_expert_frames} expert frames scored"
    )


def _meta_line(summary: dict[str, Any]) -> str:
    digest = str(summary.get("dataset_digest", ""))[:16]
    return (
        f"dataset digest {digest} · experts {Path(str(summary.get('experts'))).name}"
        f" · predictions {Path(str(summary.get('predictions'))).name}"
        f" · video-evaluator {__version__}"
    )


def _cards_html(ri: ReportInputs, confidence: float | None) -> str:
    """The headline cards, recall@k with its interval."""
    cards = []
    for card in _headline(ri):
        interval = ""
        if card.get("low") is not None and card.get("high") is not None:
            interval = (
                f'<div class="ci">{_fmt(card["low"])} – {_fmt(card["high"])}'
                f"{'' if confidence is None else f' ({confidence:.0%} CI)'}</div>"
            )
        cards.append(
            f'<div class="card" data-metric="{card["name"]}"><div class="label">'
            f'{html.escape(card["label"])}</div><div class="value">{_fmt(card["value"])}</div>'
            f"{interval}</div>"
        )
    return "".join(cards)


def _counts_html(s: PosterSettings, metrics: dict[str, Any]) -> str:
    """The videos scored, excluded and dropped, one list item each."""
    count_items = [
        ("eligible videos", metrics["n_videos_eligible"]),
        (f"excluded (< {s.min_expert_frames} expert frames)", metrics["n_videos_excluded"]),
        ("without predictions", metrics["n_videos_without_predictions"]),
        ("prediction videos unknown to the experts", metrics["n_prediction_videos_unknown"]),
        (f"predictions past k_max={s.k_max} ignored", metrics["n_predictions_truncated"]),
        ("duplicate expert rows dropped", metrics["n_expert_duplicates_dropped"]),
    ]
    return "".join(f"<li><b>{int(v)}</b> {html.escape(label)}</li>" for label, v in count_items)


def _reasons_html(why: list[str], metrics: dict[str, Any]) -> str:
    """Hits and each miss reason: count and share of the eligible videos, linked to the
    gallery's filter."""
    n_elig = int(metrics["n_videos_eligible"])
    counts = pd.Series(why).replace("", "hit").value_counts()
    return "".join(
        f'<tr><td><a href="#gallery" data-filter="{"hit" if r == "hit" else "reason:" + r}">'
        f"{html.escape(r)}</a></td><td>{int(c)}</td><td>{c / max(n_elig, 1):.1%}</td></tr>"
        for r, c in counts.items()
    )


def _plots_html(plot_pngs: dict[str, bytes]) -> str:
    return "".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode("ascii")}"><figcaption>{html.escape(name)}'
        f"</figcaption></figure>"
        for name, png in plot_pngs.items()
    )


def _warnings_html(warnings: Sequence[str]) -> str:
    """The summary's warnings (e.g. a ``min_cosine`` that barely filters) above the cards."""
    return "".join(f'<p class="warning">⚠ {html.escape(str(w))}</p>' for w in warnings)


def report_writer(ri: ReportInputs, options: ReportOptions, plots: Sequence[str]) -> Writer:
    """A writer of ``report.html``; it embeds the plot files already written beside it.

    Args:
        ri: the evaluation.
        options: gallery options.
        plots: the plot files (relative to the report's folder) to embed, written earlier in
            the same `write_all`.
    """

    def write(path: Path) -> None:
        pngs = {Path(rel).stem: (path.parent / rel).read_bytes() for rel in plots}
        path.write_text(build_report_html(ri, options, pngs), encoding="utf-8")

    return write
