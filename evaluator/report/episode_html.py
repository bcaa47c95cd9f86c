"""``report.html`` of an episode evaluation: the headline numbers, the single model beside the
consensus of two readings, the text-extraction accuracy per case, the worst misreads and the
plots (inline PNGs). One self-contained page; it loads nothing from the network.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from evaluator import __version__
from evaluator.io.outputs import Writer

# Misread videos the report lists (all of them are in episode_text.parquet).
MAX_MISREADS = 20
# Case rows the report lists (all of them are in slices.parquet).
MAX_CASES = 200
HEADLINE = (
    "n_videos",
    "episode_accuracy",
    "mismatch_precision",
    "mismatch_recall",
    "mismatch_f1",
    "coverage",
    "auto_accuracy",
    "n_missed_mismatches_auto_accepted",
    "n_false_flags_auto",
)
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 14px; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.sub { color: #666; font-size: 13px; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
code { background: #f4f4f4; padding: 0 3px; }
"""


def _num(x: object, digits: int = 4) -> str:
    if x is None or pd.isna(x):  # type: ignore[call-overload]
        return "–"
    value = float(x)  # type: ignore[arg-type]
    if not math.isfinite(value):
        return "–"
    return f"{int(value)}" if value.is_integer() and abs(value) >= 1 else f"{value:.{digits}f}"


def _interval(metrics: dict[str, float], name: str) -> str:
    low, high = metrics.get(f"{name}_ci_low"), metrics.get(f"{name}_ci_high")
    return f"{_num(low)} – {_num(high)}" if low is not None else ""


def _rows(cells: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(c for c in row) + "</tr>" for row in cells)
    return f"<table><tr>{head}</tr>{body}</table>"


def _td(text: object, num: bool = False, count: bool = False) -> str:
    if count:
        return f'<td class="num">{int(text)}</td>'  # type: ignore[call-overload]
    return f'<td class="num">{_num(text)}</td>' if num else f"<td>{html.escape(str(text))}</td>"


def _text_cell(value: object, empty: str) -> str:
    return empty if value is None or pd.isna(value) else str(value)  # type: ignore[call-overload]


def _headline(metrics: dict[str, float]) -> str:
    names = [n for n in HEADLINE if n in metrics]
    names += [n for n in metrics if n.startswith("coverage_at_accuracy_") and "_ci_" not in n]
    rows = [[_td(n), _td(metrics[n], True), _td(_interval(metrics, n))] for n in names]
    return "<h2>Episode verification</h2>" + _rows(rows, ("metric", "value", "interval"))


def _consensus(metrics: dict[str, float]) -> str:
    if "consensus_coverage" not in metrics:
        return ""
    pairs = (
        ("decided without a human (coverage)", "coverage", "consensus_coverage"),
        ("right among those (auto_accuracy)", "auto_accuracy", "consensus_auto_accuracy"),
        (
            "missed mismatches decided alone",
            "n_missed_mismatches_auto_accepted",
            "consensus_missed_mismatches",
        ),
    )
    rows = [
        [_td(label), _td(metrics[a], True, count), _td(metrics[b], True, count)]
        for (label, a, b), count in zip(pairs, (False, False, True), strict=True)
    ]
    second = [
        [_td(n), _td(metrics[n], True)]
        for n in ("text_episode_accuracy", "readings_agree", "accuracy_when_readings_agree")
    ]
    return (
        "<h2>Single model vs consensus of two readings</h2><p class='sub'>The consensus decides a "
        "video alone only when the model's reading and the text-based reading agree and the "
        "confidence reaches the threshold (docs/episode.md explains how to read it).</p>"
        + _rows(rows, ("", "single model", "consensus"))
        + _rows(second, ("second reading", "value"))
    )


def _text(metrics: dict[str, float], cases: pd.DataFrame | None) -> str:
    if "text_cer" not in metrics:
        return ""
    names = ("text_cer", "text_exact_match", "n_text_videos", "episode_errors_with_text_error")
    rows = [[_td(n), _td(metrics[n], True), _td(_interval(metrics, n))] for n in names]
    out = (
        "<h2>Text extraction</h2><p class='sub'>Over the videos with a transcription "
        "(<code>text_true</code>); texts compared after NFKC and whitespace normalisation.</p>"
        + _rows(rows, ("metric", "value", "interval"))
    )
    if cases is not None and "text_cer" in cases.columns:
        shown = cases[cases["n_text_videos"] > 0].head(MAX_CASES)
        case_rows = [
            [
                _td(r.slice_column),
                _td(r.slice_value),
                _td(r.n_text_videos, True),
                _td(r.text_cer, True),
                _td(f"{_num(r.text_cer_ci_low)} – {_num(r.text_cer_ci_high)}"),
                _td(r.text_exact_match, True),
                _td(f"{_num(r.text_exact_match_ci_low)} – {_num(r.text_exact_match_ci_high)}"),
            ]
            for r in shown.itertuples(index=False)
        ]
        out += "<h3>Per case</h3>" + _rows(
            case_rows,
            ("case", "value", "videos", "text_cer", "interval", "text_exact_match", "interval"),
        )
    return out


def _misreads(misreads: pd.DataFrame | None, case_columns: Sequence[str]) -> str:
    if misreads is None:
        return ""
    shown = misreads.head(MAX_MISREADS)
    rows = []
    for r in shown.to_dict("records"):
        case = ", ".join(f"{c}={r[c]}" for c in case_columns if c in r)
        rows.append(
            [
                _td(r["rank"], True),
                _td(r["video_id"]),
                _td(case),
                _td(_text_cell(r["text_true"], "")),
                _td(_text_cell(r["text_read"], "(nothing read)")),
                _td(r["edit_distance"], True),
            ]
        )
    note = (
        f"The {len(shown)} worst of {len(misreads)} misread videos (all in episode_text.parquet)."
    )
    return (
        f"<h2>Worst misreads</h2><p class='sub'>{html.escape(note)} Worst = most character "
        "errors, then the highest error rate.</p>"
        + _rows(rows, ("#", "video", "case", "truth", "read", "edits"))
    )


def episode_report_writer(
    title: str,
    metrics: dict[str, float],
    *,
    plots: Sequence[str],
    cases: pd.DataFrame | None = None,
    misreads: pd.DataFrame | None = None,
    case_columns: Sequence[str] = (),
) -> Writer:
    """A writer of ``report.html``; it embeds the plot files already written beside it.

    Args:
        title: The page title (the model and the input file).
        metrics: Every metric of the evaluation by name.
        plots: Relative paths of the plots to embed (those missing are skipped).
        cases: ``slices.parquet`` (for the per-case text table), or None.
        misreads: ``episode_text.parquet``, or None.
        case_columns: The columns of ``misreads`` that name a video's case.
    """

    def write(path: Path) -> None:
        images = []
        for rel in plots:
            png = path.parent / rel
            if png.is_file():
                data = base64.b64encode(png.read_bytes()).decode("ascii")
                images.append(
                    f"<h3>{html.escape(rel)}</h3><img alt='{html.escape(rel)}' "
                    f"src='data:image/png;base64,{data}'>"
                )
        body = (
            _headline(metrics)
            + _consensus(metrics)
            + _text(metrics, cases)
            + _misreads(misreads, case_columns)
            + ("<h2>Plots</h2>" + "".join(images) if images else "")
        )
        page = (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p class='sub'>video-eval {__version__}</p>"
            f"{body}</body></html>"
        )
        path.write_text(page, encoding="utf-8")

    return write
