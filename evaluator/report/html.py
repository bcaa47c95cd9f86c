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
from evaluator.core.matching import FRAME_STATUSES, MISS_REASONS, FrameMatches
from evaluator.core.poster import PosterResult, poster_frame_matches
from evaluator.io.poster import PosterInputs
from evaluator.io.thumbnails import resolve_image, thumbnail_data_uri
from evaluator.outputs import Writer


@dataclass(frozen=True)
class ReportInputs:
    """What the report is made of.

    Attributes:
        title: the model's name (the run name).
        result: the core result.
        inputs: the validated tables (frames, image paths).
        summary: the content of summary.json (metrics by name).
        table: the match table.
        intervals: the bootstrap intervals of recall@k, or None.
        image_root: base folder of ``image`` paths (None: each table's folder).
    """

    title: str
    result: PosterResult
    inputs: PosterInputs
    summary: dict[str, Any]
    table: pd.DataFrame
    intervals: BootstrapResult | None
    image_root: Path | None = None


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
    """Thumbnails of one table's ``image`` column, made once per distinct file."""

    def __init__(self, frame: pd.DataFrame, root: Path, height_px: int, store: list[str]):
        self.paths = frame["image"].astype("string").fillna("").to_numpy(dtype=object)
        self.root = root
        self.height_px = height_px
        self.store = store
        self.index: dict[Path, int] = {}

    def get(self, row: int) -> int:
        """Index of row's thumbnail in the shared store, -1 when it has none."""
        relative = str(self.paths[row])
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
    result, inputs = ri.result, ri.inputs
    fm: FrameMatches = poster_frame_matches(inputs.experts, inputs.model, result)
    m = result.matches
    n = m.videos.shape[0]
    reasons = np.asarray(MISS_REASONS, dtype=object)[m.miss_reason]
    ids = inputs.video_ids[m.videos].astype(str)
    # Misses first (by reason, then id), then hits from the latest first hit to the earliest.
    is_hit = m.first_hit_rank > 0
    order = np.lexsort((ids, -m.first_hit_rank, reasons, is_hit))
    # Frames come grouped by scored video, in the order of ``m.videos``; reorder the groups.
    m_split = np.searchsorted(_positions(fm.model_video, m.videos), np.arange(n + 1))
    e_split = np.searchsorted(_positions(fm.expert_video, m.videos), np.arange(n + 1))
    m_len = np.diff(m_split)[order]
    e_len = np.diff(e_split)[order]
    mi = _ranges(m_split[:-1][order], m_len)
    ei = _ranges(e_split[:-1][order], e_len)

    thumbs: list[str] = []
    e_th = np.full(ei.shape[0], -1, dtype=np.int64)
    m_th = np.full(mi.shape[0], -1, dtype=np.int64)
    if (
        options.thumbnail_px > 0
        and "image" in inputs.expert_table.frame.columns
        and "image" in inputs.prediction_table.frame.columns
    ):

        def root(table_path: Path) -> Path:
            return ri.image_root if ri.image_root is not None else table_path.parent

        exp_thumbs = _Thumbnails(
            inputs.expert_table.frame, root(inputs.expert_table.path), options.thumbnail_px, thumbs
        )
        pred_thumbs = _Thumbnails(
            inputs.prediction_table.frame,
            root(inputs.prediction_table.path),
            options.thumbnail_px,
            thumbs,
        )
        # Thumbnails only for the first videos shown: a bounded number of files.
        shown = max(0, min(n, int(options.max_thumbnail_videos)))
        for j in range(int(e_len[:shown].sum())):
            e_th[j] = exp_thumbs.get(int(fm.expert_row[ei[j]]))
        for j in range(int(m_len[:shown].sum())):
            m_th[j] = pred_thumbs.get(int(fm.model_row[mi[j]]))

    cols = {
        "id": ids[order].tolist(),
        "hit": m.first_hit_rank[order].tolist(),
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
    s = ri.result.settings
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
    result = ri.result
    s = result.settings
    metrics = ri.summary["metrics"]
    confidence = None
    if ri.intervals is not None:
        confidence = ri.intervals.confidence
    data = gallery_data(ri, options)
    counts = pd.Series(data["cols"]["why"]).replace("", "hit").value_counts()
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
    blob = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    # Inside <script>: no "</script>" or "<!--" can come out of a JSON string this way.
    blob = blob.replace("<", "\\u003c")

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
    n_elig = int(metrics["n_videos_eligible"])
    count_items = [
        ("eligible videos", n_elig),
        (f"excluded (< {s.min_expert_frames} expert frames)", metrics["n_videos_excluded"]),
        ("without predictions", metrics["n_videos_without_predictions"]),
        ("prediction videos unknown to the experts", metrics["n_prediction_videos_unknown"]),
        (f"predictions past k_max={s.k_max} ignored", metrics["n_predictions_truncated"]),
        ("duplicate expert rows dropped", metrics["n_expert_duplicates_dropped"]),
    ]
    count_html = "".join(
        f"<li><b>{int(v)}</b> {html.escape(label)}</li>" for label, v in count_items
    )
    reason_rows = "".join(
        f'<tr><td><a href="#gallery" data-filter="{"hit" if r == "hit" else "reason:" + r}">'
        f"{html.escape(r)}</a></td><td>{int(c)}</td><td>{c / max(n_elig, 1):.1%}</td></tr>"
        for r, c in counts.items()
    )
    plots = "".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode("ascii")}"><figcaption>{html.escape(name)}'
        f"</figcaption></figure>"
        for name, png in plot_pngs.items()
    )
    theta = "off (time only)" if s.min_cosine is None else f"{s.min_cosine:g}"
    settings_line = (
        f"match: |dt| ≤ {s.time_tolerance_s:g} s and cosine ≥ {theta}; first {s.k_max} model "
        f"frames per video; videos with ≥ {s.min_expert_frames} expert frames scored"
    )
    digest = str(ri.summary.get("dataset_digest", ""))[:16]
    return (
        _TEMPLATE.replace("__TITLE__", html.escape(ri.title))
        .replace("__SETTINGS__", html.escape(settings_line))
        .replace(
            "__META__",
            html.escape(
                f"dataset digest {digest} · experts {Path(str(ri.summary.get('experts'))).name}"
                f" · predictions {Path(str(ri.summary.get('predictions'))).name}"
                f" · video-evaluator {__version__}"
            ),
        )
        .replace("__CARDS__", "".join(cards))
        .replace("__COUNTS__", count_html)
        .replace("__REASONS__", reason_rows)
        .replace("__PLOTS__", plots)
        .replace("__DATA__", blob)
    )


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


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__ · poster-frame evaluation</title>
<style>
:root { --hit:#1a7f37; --nt:#bf8700; --ns:#8250df; --far:#cf222e; --muted:#57606a;
        --line:#d0d7de; --bg:#f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       color: #1f2328; background: #fff; }
header, main { max-width: 1280px; margin: 0 auto; padding: 12px 20px; }
header h1 { font-size: 22px; margin: 8px 0 2px; }
.sub { color: var(--muted); }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 12px 0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 8px 14px; min-width: 150px;
        background: var(--bg); }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; }
.card .value { font-size: 26px; font-weight: 600; }
.card .ci { color: var(--muted); font-size: 12px; }
.row { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
ul.counts { margin: 0; padding-left: 18px; }
table { border-collapse: collapse; }
td, th { padding: 2px 8px; text-align: left; border-bottom: 1px solid var(--line); }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
.plots figure { margin: 0; flex: 1 1 520px; max-width: 620px; }
.plots img { width: 100%; border: 1px solid var(--line); }
.row > div { flex: 1 1 380px; max-width: 620px; }
figcaption { color: var(--muted); font-size: 12px; }
.controls { position: sticky; top: 0; background: #fff; padding: 8px 0;
            border-bottom: 1px solid var(--line); display: flex; gap: 10px; flex-wrap: wrap;
            align-items: center; z-index: 2; }
.controls input, .controls select, .controls button { font: inherit; padding: 3px 8px; }
.legend span { margin-right: 10px; white-space: nowrap; }
.dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%;
       vertical-align: middle; margin-right: 3px; }
.video { border: 1px solid var(--line); border-radius: 8px; margin: 10px 0; padding: 8px 12px; }
.video.miss { border-left: 5px solid var(--far); }
.video.hit { border-left: 5px solid var(--hit); }
.vhead { display: flex; gap: 12px; align-items: baseline; flex-wrap: wrap; }
.vid { font-weight: 600; font-family: ui-monospace, monospace; }
.badge { border-radius: 10px; padding: 0 8px; color: #fff; font-size: 12px; }
.badge.hit { background: var(--hit); } .badge.miss { background: var(--far); }
svg.strip { width: 100%; height: 64px; display: block; }
.frames { display: grid; grid-template-columns: 70px 1fr; gap: 4px 8px; margin-top: 6px; }
.frames .lab { color: var(--muted); font-size: 12px; padding-top: 4px; }
.thumbs { display: flex; gap: 6px; overflow-x: auto; }
.thumb { text-align: center; font-size: 11px; color: var(--muted); }
.thumb img { display: block; border: 3px solid var(--line); border-radius: 4px; }
.thumb.s0 img, .thumb.e1 img { border-color: var(--hit); }
.thumb.s1 img { border-color: var(--nt); } .thumb.s2 img { border-color: var(--ns); }
.thumb.s3 img { border-color: var(--far); }
table.mf { font-size: 12px; margin-top: 6px; }
table.mf td.st { font-weight: 600; }
.pager { display: flex; gap: 8px; align-items: center; margin: 10px 0; }
.empty { color: var(--muted); padding: 20px 0; }
</style>
</head>
<body>
<header>
<h1>Poster frames: __TITLE__</h1>
<div class="sub">__SETTINGS__</div>
<div class="sub">__META__</div>
</header>
<main>
<section class="cards">__CARDS__</section>
<section class="row">
<div><h3>Test set</h3><ul class="counts">__COUNTS__</ul></div>
<div><h3>Outcome of the scored videos</h3>
<table><tr><th>outcome</th><th>videos</th><th>share</th></tr>__REASONS__</table>
<p class="sub">similarity: a frame close enough in time was not similar enough;
time: a similar frame was too far in time; time+similarity: both kinds, never one frame
that is both; neither: nothing close in time or similar.</p></div>
</section>
<section class="plots">__PLOTS__</section>
<section id="gallery">
<h2>Videos</h2>
<div class="controls">
<input id="q" type="search" placeholder="search video id" aria-label="search video id">
<select id="filter" aria-label="filter">
<option value="all">all videos</option>
<option value="miss">misses</option>
<option value="hit">hits</option>
</select>
<span class="legend">
<span><i class="dot" style="background:var(--hit)"></i>hit</span>
<span><i class="dot" style="background:var(--nt)"></i>near miss: in time, not similar</span>
<span><i class="dot" style="background:var(--ns)"></i>near miss: similar, not in time</span>
<span><i class="dot" style="background:var(--far)"></i>far</span>
<span>▮ expert frame (green: matched)</span>
</span>
</div>
<div class="pager" id="pager-top"></div>
<div id="videos"><noscript>The gallery needs JavaScript.</noscript></div>
<div class="pager" id="pager-bottom"></div>
</section>
</main>
<script type="application/json" id="report-data">__DATA__</script>
<script>
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("report-data").textContent);
  var C = D.cols;
  // Columns in, one light object per video; frames are expanded only for the page shown.
  D.videos = C.id.map(function (id, i) { return { id: id, hit: C.hit[i], why: C.why[i], i: i }; });
  function frames(v) {
    if (!v.e) {
      var e = [], m = [], j;
      for (j = C.eo[v.i]; j < C.eo[v.i + 1]; j++) e.push([C.e_ts[j], C.e_hit[j], C.e_th[j]]);
      for (j = C.mo[v.i]; j < C.mo[v.i + 1]; j++) {
        m.push([C.m_rank[j], C.m_ts[j], C.m_st[j], C.m_dt[j], C.m_cos[j], C.m_et[j], C.m_th[j]]);
      }
      v.e = e; v.m = m;
    }
    return v;
  }
  var S = D.settings, STATUS = ["hit", "near miss (in time, not similar)",
    "near miss (similar, not in time)", "far"];
  var COLORS = ["var(--hit)", "var(--nt)", "var(--ns)", "var(--far)"];
  var state = { q: "", filter: "all", page: 0 };
  var qBox = document.getElementById("q"), fBox = document.getElementById("filter");
  D.reasons.forEach(function (r) {
    var o = document.createElement("option");
    o.value = "reason:" + r; o.textContent = "miss: " + r; fBox.appendChild(o);
  });
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function num(v, d) { return v === null || v === undefined ? "–" : Number(v).toFixed(d); }
  function keep(v) {
    if (state.q && v.id.toLowerCase().indexOf(state.q) < 0) return false;
    if (state.filter === "hit") return v.hit > 0;
    if (state.filter === "miss") return v.hit === 0;
    if (state.filter.indexOf("reason:") === 0) return v.why === state.filter.slice(7);
    return true;
  }
  function strip(v) {
    var tol = S.time_tolerance_s, hi = 1;
    v.e.forEach(function (e) { hi = Math.max(hi, e[0] + tol); });
    v.m.forEach(function (m) { hi = Math.max(hi, m[1] + tol); });
    var W = 1000, x = function (t) { return 8 + (W - 16) * t / hi; }, out = [];
    out.push('<svg class="strip" viewBox="0 0 ' + W + ' 64" preserveAspectRatio="none">');
    out.push('<line x1="8" y1="32" x2="' + (W - 8) + '" y2="32" stroke="#d0d7de"/>');
    v.e.forEach(function (e) {
      var a = x(Math.max(0, e[0] - tol)), b = x(e[0] + tol);
      out.push('<rect x="' + a + '" y="4" width="' + (b - a) + '" height="24" fill="' +
        (e[1] ? "#dafbe1" : "#eaeef2") + '" opacity="0.7"/>');
    });
    v.e.forEach(function (e) {
      out.push('<rect x="' + (x(e[0]) - 2) + '" y="4" width="4" height="24" fill="' +
        (e[1] ? "#1a7f37" : "#57606a") + '"><title>expert frame at ' + num(e[0], 2) +
        " s" + (e[1] ? " (matched)" : "") + "</title></rect>");
    });
    v.m.forEach(function (m) {
      out.push('<g><circle cx="' + x(m[1]) + '" cy="46" r="8" fill="' + COLORS[m[2]] +
        '"/><text x="' + x(m[1]) + '" y="50" font-size="10" text-anchor="middle" fill="#fff">' +
        m[0] + "</text><title>rank " + m[0] + " at " + num(m[1], 2) + " s: " +
        STATUS[m[2]] + ", dt " + num(m[3], 2) + " s, cosine " + num(m[4], 3) +
        "</title></g>");
    });
    out.push('<text x="8" y="62" font-size="10" fill="#57606a">0 s</text>');
    out.push('<text x="' + (W - 8) + '" y="62" font-size="10" fill="#57606a" ' +
      'text-anchor="end">' + num(hi, 1) + " s</text></svg>");
    return out.join("");
  }
  function thumbs(v) {
    var any = v.e.some(function (e) { return e[2] >= 0; }) ||
      v.m.some(function (m) { return m[6] >= 0; });
    if (!any) return "";
    function img(i) {
      return i >= 0 ? '<img loading="lazy" alt="" src="' + D.thumbs[i] + '">' :
        '<div style="height:96px;width:96px;background:#eaeef2"></div>';
    }
    var ex = v.e.map(function (e) {
      return '<div class="thumb e' + e[1] + '">' + img(e[2]) + num(e[0], 1) + " s</div>";
    }).join("");
    var mo = v.m.map(function (m) {
      return '<div class="thumb s' + m[2] + '" title="' + esc(STATUS[m[2]]) + '">' +
        img(m[6]) + "#" + m[0] + " · " + num(m[1], 1) + " s<br>dt " + num(m[3], 1) +
        (m[4] === null ? "" : " · cos " + num(m[4], 2)) + "</div>";
    }).join("");
    return '<div class="frames"><div class="lab">expert</div><div class="thumbs">' + ex +
      '</div><div class="lab">model</div><div class="thumbs">' + mo + "</div></div>";
  }
  function frameTable(v) {
    if (!v.m.length) return '<div class="sub">The model returned no frames for this video.</div>';
    var rows = v.m.map(function (m) {
      return "<tr><td>" + m[0] + "</td><td>" + num(m[1], 2) + '</td><td class="st" ' +
        'style="color:' + COLORS[m[2]] + '">' + esc(STATUS[m[2]]) + "</td><td>" +
        num(m[3], 2) + "</td><td>" + num(m[4], 3) + "</td><td>" + num(m[5], 2) + "</td></tr>";
    }).join("");
    return '<table class="mf"><tr><th>rank</th><th>t (s)</th><th>frame</th><th>|dt| (s)</th>' +
      "<th>cosine</th><th>expert t (s)</th></tr>" + rows + "</table>";
  }
  function card(v) {
    var hit = v.hit > 0;
    var badge = hit ? '<span class="badge hit">hit at rank ' + v.hit + "</span>" :
      '<span class="badge miss">miss: ' + esc(v.why) + "</span>";
    return '<article class="video ' + (hit ? "hit" : "miss") + '" data-video="' + esc(v.id) +
      '"><div class="vhead"><span class="vid">' + esc(v.id) + "</span>" + badge +
      '<span class="sub">' + v.e.length + " expert frames · " + v.m.length +
      " model frames</span></div>" + strip(v) + thumbs(v) + frameTable(v) + "</article>";
  }
  function pager(n, pages) {
    var first = state.page * D.page_size;
    return '<button data-go="-1"' + (state.page === 0 ? " disabled" : "") + ">‹ previous</button>" +
      "<span>page " + (pages ? state.page + 1 : 0) + " of " + pages + " · videos " +
      (n ? first + 1 : 0) + "–" + Math.min(n, first + D.page_size) + " of " + n + "</span>" +
      '<button data-go="1"' + (state.page >= pages - 1 ? " disabled" : "") + ">next ›</button>";
  }
  function render() {
    var shown = D.videos.filter(keep), n = shown.length;
    var pages = Math.ceil(n / D.page_size);
    state.page = Math.max(0, Math.min(state.page, pages - 1));
    var slice = shown.slice(state.page * D.page_size, (state.page + 1) * D.page_size).map(frames);
    document.getElementById("videos").innerHTML = n ? slice.map(card).join("") :
      '<div class="empty">No video matches the search and filter.</div>';
    var p = pager(n, pages);
    document.getElementById("pager-top").innerHTML = p;
    document.getElementById("pager-bottom").innerHTML = p;
    document.body.setAttribute("data-rendered", String(slice.length));
    document.body.setAttribute("data-matching", String(n));
  }
  qBox.addEventListener("input", function () {
    state.q = qBox.value.trim().toLowerCase(); state.page = 0; render();
  });
  fBox.addEventListener("change", function () {
    state.filter = fBox.value; state.page = 0; render();
  });
  document.addEventListener("click", function (ev) {
    var t = ev.target;
    if (t.getAttribute && t.getAttribute("data-go")) {
      state.page += Number(t.getAttribute("data-go")); render();
      document.getElementById("gallery").scrollIntoView();
    } else if (t.getAttribute && t.getAttribute("data-filter")) {
      fBox.value = t.getAttribute("data-filter"); state.filter = fBox.value; state.page = 0;
      render();
    }
  });
  render();
})();
</script>
</body>
</html>
"""
