"""The comparison per slice: both evaluations' slices, aligned by the metadata, tested per slice.

An evaluation run with ``data.slices`` records ``slice_videos.parquet`` (each evaluated
video's slice per column, as evaluated) and ``slices.parquet`` (with each slice's metric-key
prefix). A comparison reads both runs' ``slice_videos.parquet``, requires that the two agree
on the slice of every compared video (the same metadata), and runs
`evaluator.core.slice_tests` per slice: paired delta, bootstrap interval, two-sided and
one-sided exact McNemar p-values, adjusted across the gated slices (Holm or BH), and the gate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluator.core.multiplicity import ADJUSTMENTS, adjust_p_values
from evaluator.core.slice_tests import SliceGate, SlicePaired, slice_gate, slice_paired
from evaluator.core.slices import MISSING, slice_metric_keys
from evaluator.decisions.paired_runs import Comparison, SliceComparison, read_run_parquet
from evaluator.errors import InputError
from evaluator.io.outputs import Writer, write_parquet
from evaluator.report.slices import plot_forest
from evaluator.tracking.registry import EvaluationRun, artifact_names

SLICE_VIDEOS = "slice_videos.parquet"
DEFAULT_MIN_VIDEOS = 30


@dataclass(frozen=True)
class SliceTestSettings:
    """The checked per-slice comparison settings.

    Attributes:
        enabled: None = when both runs have slices; True = required; False = off.
        adjust: ``holm`` or ``bh``.
        alpha: the level of the adjusted tests.
        min_videos: the smallest slice tested (None = the candidate run's
            ``slices.min_videos``).
        metric: the 0/1 metric tested per slice (None = the task's default).
        one_side_ok: a slice file on one side only is a warning, not an error.
        off_hint: the setting that turns slices off (named in the errors).
    """

    enabled: bool | None = None
    adjust: str = "holm"
    alpha: float = 0.05
    min_videos: int | None = None
    metric: str | None = None
    one_side_ok: bool = False
    off_hint: str = "slices.enabled=false"


def slice_test_settings(
    node: Any,
    key: str,
    *,
    alpha: float | None = None,
    metric: str | None = None,
    enabled: bool | None = None,
    one_side_ok: bool = False,
    off_hint: str = "slices.enabled=false",
) -> SliceTestSettings:
    """Check a ``slices`` config node (compare) or ``promote.slices`` (promote).

    Args:
        node: the config node (adjust, alpha, min_videos, metric, maybe enabled).
        key: its config path, for messages (``slices`` or ``promote.slices``).
        alpha / metric / enabled: the values to use where the node leaves them null.
        one_side_ok / off_hint: see :class:`SliceTestSettings`.

    Raises:
        InputError: a value out of range, naming the key.
    """
    adjust = str(node.adjust)
    if adjust not in ADJUSTMENTS:
        raise InputError(
            f"config: {key}.adjust must be one of {list(ADJUSTMENTS)}, got {adjust!r}."
        )
    a = node.alpha if node.alpha is not None else alpha
    if a is None or not 0.0 < float(a) < 1.0:
        raise InputError(f"config: {key}.alpha must be in (0, 1), got {node.alpha!r}.")
    n = node.min_videos
    if n is not None and (isinstance(n, bool) or int(n) != n or int(n) < 1):
        raise InputError(f"config: {key}.min_videos must be an integer >= 1 or null, got {n!r}.")
    chosen = getattr(node, "enabled", None)
    return SliceTestSettings(
        enabled=enabled if chosen is None else bool(chosen),
        adjust=adjust,
        alpha=float(a),
        min_videos=None if n is None else int(n),
        metric=str(node.metric) if node.metric else metric,
        one_side_ok=one_side_ok,
        off_hint=off_hint,
    )


def _labels(frame: pd.DataFrame, ids: np.ndarray, column: str) -> pd.Series:
    index = pd.Index(frame["video_id"].astype(str))
    rows = index.get_indexer(pd.Index(np.asarray(ids).astype(str)))
    values = frame[column].astype("string").to_numpy(dtype=object)
    out = np.where(rows >= 0, values[np.maximum(rows, 0)], MISSING)
    return pd.Series(out, dtype="string").fillna(MISSING)


def _categories(frame: pd.DataFrame, column: str) -> list[str]:
    col = frame[column]
    if isinstance(col.dtype, pd.CategoricalDtype):
        return [str(v) for v in col.cat.categories]
    return sorted(str(v) for v in col.dropna().unique())


def _keys(tracking_uri: str, run: EvaluationRun, tmp: Path) -> dict[tuple[str, str], str]:
    if "slices.parquet" not in artifact_names(tracking_uri, run.run_id):
        return {}
    cols = ["slice_column", "slice_value", "metric_key"]
    t = read_run_parquet(tracking_uri, run, "slices.parquet", tmp, cols)
    return {
        (str(c), str(v)): str(k)
        for c, v, k in zip(t["slice_column"], t["slice_value"], t["metric_key"], strict=True)
    }


def _has_slices(tracking_uri: str, run: EvaluationRun) -> bool:
    return SLICE_VIDEOS in artifact_names(tracking_uri, run.run_id)


def compare_slices(
    c: Comparison,
    tracking_uri: str,
    tmp: Path,
    settings: SliceTestSettings,
    *,
    allow_mismatch: bool = False,
) -> tuple[SliceComparison | None, list[str]]:
    """The per-slice comparison of ``c``'s two runs, or None when there is none to make.

    Returns:
        The comparison (or None) and warnings to add to ``c``.

    Raises:
        InputError: slices recorded on one side only (unless ``settings.one_side_ok``),
            required and missing, no common slice column, the runs disagree on the slice of
            a compared video (unless ``allow_mismatch``), a metric that is not 0/1 per video.
    """
    if settings.enabled is False or c.video_ids is None or c.cand_values is None:
        return None, []
    compared, warnings = _both_have_slices(c, tracking_uri, settings)
    if not compared:
        return None, warnings
    ct = read_run_parquet(tracking_uri, c.candidate, SLICE_VIDEOS, tmp, ["video_id"])
    bt = read_run_parquet(tracking_uri, c.baseline, SLICE_VIDEOS, tmp, ["video_id"])
    columns, warnings = _common_columns(ct, bt)
    ids = np.asarray(c.video_ids).astype(str)
    codes, values = [], []
    for col in columns:
        code, vals, disagree = _slice_codes(ct, bt, ids, col, allow_mismatch=allow_mismatch)
        codes.append(code)
        values.append(vals)
        warnings += disagree
    metric, cand_v, base_v, keep = _slice_metric_values(c, settings)
    codes = [code[keep] for code in codes]
    keys = _keys(tracking_uri, c.candidate, tmp)
    parts = [
        _slice_rows(metric, col, vals, keys, _paired(cand_v, base_v, code, vals, metric, c))
        for col, code, vals in zip(columns, codes, values, strict=True)
    ]
    table = pd.concat(parts, ignore_index=True)
    gate = _gate(
        table, metric, settings, settings.min_videos or _recorded_min_videos(c.candidate), c
    )
    return SliceComparison(metric, table, gate, tuple(columns)), warnings


def _both_have_slices(
    c: Comparison, tracking_uri: str, settings: SliceTestSettings
) -> tuple[bool, list[str]]:
    """Whether both runs recorded slices, with a warning when one run's slices are left out.

    Raises:
        InputError: required and recorded by neither, or by one only (not ``one_side_ok``).
    """
    cand, base = c.candidate, c.baseline
    have = {
        "candidate": _has_slices(tracking_uri, cand),
        "baseline": _has_slices(tracking_uri, base),
    }
    if all(have.values()):
        return True, []
    if not any(have.values()):
        if settings.enabled:
            raise InputError(
                f"slices are required ({settings.off_hint.replace('=false', '=true')}) but "
                f"neither the candidate ({cand.label}, run {cand.run_id}) nor the baseline "
                f"({base.label}, run {base.run_id}) was evaluated with data.slices=PATH."
            )
        return False, []
    with_, without = ("candidate", "baseline") if have["candidate"] else ("baseline", "candidate")
    runs = {"candidate": cand, "baseline": base}
    text = (
        f"the {with_} ({runs[with_].label}, run {runs[with_].run_id}) was evaluated with "
        f"slices (data.slices) but the {without} ({runs[without].label}, run "
        f"{runs[without].run_id}) was not, so its slices cannot be compared"
    )
    if settings.one_side_ok and not settings.enabled:
        return False, [f"{text}; compared without slices"]
    raise InputError(
        f"{text}: evaluate the {without} again with the same data.slices file, or pass "
        f"{settings.off_hint} to compare without slices."
    )


def _common_columns(ct: pd.DataFrame, bt: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The slice columns both runs have (candidate's order), and a warning for the rest.

    Raises:
        InputError: the two runs have no slice column in common.
    """
    c_cols = [col for col in ct.columns if col != "video_id"]
    b_cols = [col for col in bt.columns if col != "video_id"]
    columns = [col for col in c_cols if col in b_cols]
    if not columns:
        raise InputError(
            f"the candidate's slice columns {c_cols} and the baseline's {b_cols} have none in "
            f"common: evaluate both with the same data.slices file and slices.columns."
        )
    warnings = []
    if columns != c_cols or columns != b_cols:
        warnings.append(
            f"slice columns only in the candidate {sorted(set(c_cols) - set(columns))} and only "
            f"in the baseline {sorted(set(b_cols) - set(columns))} are not compared"
        )
    return columns, warnings


def _slice_codes(
    ct: pd.DataFrame, bt: pd.DataFrame, ids: np.ndarray, col: str, *, allow_mismatch: bool
) -> tuple[np.ndarray, list[str], list[str]]:
    """Each compared video's slice of ``col`` (a code into the values used), the values, and
    a warning where the runs disagree.

    Raises:
        InputError: the runs put a compared video in different slices (no ``allow_mismatch``).
    """
    cl, bl = _labels(ct, ids, col), _labels(bt, ids, col)
    differ = (cl != bl).to_numpy(bool)
    warnings = []
    if differ.any():
        rows = np.flatnonzero(differ)
        examples = ", ".join(f"{ids[i]} ({cl.iloc[i]!r} vs {bl.iloc[i]!r})" for i in rows[:5])
        text = (
            f"the candidate and the baseline put {rows.size} compared video(s) in different "
            f"slices of column {col!r}, e.g. {examples}"
        )
        if not allow_mismatch:
            raise InputError(
                f"{text}: evaluate both with the same data.slices file (and slices.bins), "
                f"or pass allow_mismatch=true to use the candidate's slices."
            )
        warnings.append(f"{text}; the candidate's slices are used")
    order = [v for v in _categories(ct, col) if v != MISSING] + [MISSING]
    cat = pd.Categorical(cl, categories=list(dict.fromkeys(order + sorted(set(cl) - set(order)))))
    used = np.flatnonzero(np.bincount(cat.codes, minlength=len(cat.categories)) > 0)
    remap = np.full(len(cat.categories), -1)
    remap[used] = np.arange(used.size)
    return remap[cat.codes], [str(cat.categories[i]) for i in used], warnings


def _slice_metric_values(
    c: Comparison, settings: SliceTestSettings
) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """The metric tested per slice, both runs' values of it where both are finite, and the
    mask of those videos.

    Raises:
        InputError: the metric is not one of the compared metrics.
    """
    metric = settings.metric or (
        f"recall_at_{c.k_max}" if c.task == "poster" else "episode_accuracy"
    )
    if metric not in c.names:
        raise InputError(
            f"config: the slice metric {metric!r} is not compared (have {list(c.names)}); use "
            f"a recall_at_k with k <= {c.k_max}, or episode_accuracy / text_exact_match."
        )
    j = c.index(metric)
    cand_v, base_v = c.cand_values[:, j], c.base_values[:, j]  # type: ignore[index]
    # text_exact_match is NaN for a video without a transcription: test the transcribed ones.
    keep = np.isfinite(cand_v) & np.isfinite(base_v)
    return metric, cand_v[keep], base_v[keep], keep


def _paired(
    cand_v: np.ndarray,
    base_v: np.ndarray,
    code: np.ndarray,
    vals: list[str],
    metric: str,
    c: Comparison,
) -> SlicePaired:
    """`slice_paired` of one slice column (InputError: the metric is not 0/1 per video)."""
    boot = c.bootstrap
    try:
        return slice_paired(
            cand_v,
            base_v,
            code,
            len(vals),
            n_resamples=boot.n_resamples,
            confidence=boot.confidence,
            seed=boot.seed,
        )
    except ValueError as exc:
        raise InputError(f"config: slice metric {metric!r}: {exc}.") from None


def _slice_rows(
    metric: str, col: str, vals: list[str], keys: dict[tuple[str, str], str], p: SlicePaired
) -> pd.DataFrame:
    """The rows of ``slice_comparison.parquet`` of one slice column."""
    fallback = slice_metric_keys(col, vals)
    return pd.DataFrame(
        {
            "slice_column": pd.Series([col] * len(vals), dtype="string"),
            "slice_value": pd.Series(vals, dtype="string"),
            "metric_key": pd.Series(
                [keys.get((col, v), f) for v, f in zip(vals, fallback, strict=True)],
                dtype="string",
            ),
            "n_videos": p.n_videos,
            f"candidate_{metric}": p.cand_mean,
            f"baseline_{metric}": p.base_mean,
            f"delta_{metric}": p.delta,
            f"delta_{metric}_ci_low": p.ci_low,
            f"delta_{metric}_ci_high": p.ci_high,
            "n_gained": p.n_gained,
            "n_lost": p.n_lost,
            "mcnemar_p": p.mcnemar_p,
            "p_regression": p.p_regression,
        }
    )


def _gate(
    table: pd.DataFrame, metric: str, settings: SliceTestSettings, min_videos: int, c: Comparison
) -> SliceGate:
    """The slice gate over ``table``; its verdict columns are added to ``table`` in place."""
    labels = (table["slice_column"] + "=" + table["slice_value"]).to_numpy(dtype=object)
    gate = slice_gate(
        metric,
        labels,
        table["n_videos"].to_numpy(),
        table[f"delta_{metric}"].to_numpy(),
        table[f"delta_{metric}_ci_low"].to_numpy(),
        table[f"delta_{metric}_ci_high"].to_numpy(),
        table["p_regression"].to_numpy(),
        min_videos=min_videos,
        alpha=settings.alpha,
        adjust=settings.adjust,
        confidence=c.bootstrap.confidence,
    )
    table.insert(4, "gated", gate.gated)
    table["mcnemar_p_adjusted"] = adjust_p_values(
        np.where(gate.gated, table["mcnemar_p"].to_numpy(), np.nan), settings.adjust
    )
    table["p_regression_adjusted"] = gate.p_adjusted
    table["significant_regression"] = gate.significant
    return gate


def _recorded_min_videos(run: EvaluationRun) -> int:
    try:
        return int(run.params.get("slices.min_videos", DEFAULT_MIN_VIDEOS))
    except ValueError:
        return DEFAULT_MIN_VIDEOS


# ----------------------------------------------------------------------------- the record


def slice_metrics(sc: SliceComparison) -> dict[str, float]:
    """The comparison run's per-slice metrics and the gate's counts."""
    t, m = sc.table, sc.metric
    out = {
        "n_slices_tested": float(sc.gate.gated.sum()),
        "n_slices_regressed": float(sc.gate.significant.sum()),
    }
    for key, delta, p_adj in zip(
        t["metric_key"], t[f"delta_{m}"], t["p_regression_adjusted"], strict=True
    ):
        if math.isfinite(delta):
            out[f"{key}/delta_{m}"] = float(delta)
        if math.isfinite(p_adj):
            out[f"{key}/p_regression_adjusted"] = float(p_adj)
    return out


def slice_params(sc: SliceComparison) -> dict[str, str]:
    """The comparison run's params of the slice tests (``compare.slices.*``)."""
    g = sc.gate
    return {
        "compare.slices.metric": sc.metric,
        "compare.slices.adjust": g.adjust,
        "compare.slices.alpha": str(g.alpha),
        "compare.slices.min_videos": str(g.min_videos),
        "compare.slices.columns": ",".join(sc.columns),
    }


def slice_summary(sc: SliceComparison) -> dict[str, Any]:
    """``summary.json["slices"]`` of a comparison."""
    g = sc.gate
    return {
        "metric": sc.metric,
        "columns": list(sc.columns),
        "adjust": g.adjust,
        "alpha": g.alpha,
        "min_videos": g.min_videos,
        "n_slices": len(sc.table),
        "n_slices_tested": int(g.gated.sum()),
        "n_slices_regressed": int(g.significant.sum()),
        "regressions": [str(label) for label in g.labels[g.significant]],
    }


def slice_files(sc: SliceComparison, title: str, plots: bool) -> dict[str, Writer]:
    """``slice_comparison.parquet`` and the forest plot of the deltas."""
    files: dict[str, Writer] = {"slice_comparison.parquet": write_parquet(sc.table)}
    if plots:
        m = sc.metric

        def write(path: Path) -> None:
            plot_forest(
                sc.table,
                f"delta_{m}",
                f"delta_{m}_ci_low",
                f"delta_{m}_ci_high",
                path,
                title=f"{title}: delta {m} per slice (red: significant regression)",
                xlabel=f"delta {m}, candidate - baseline (paired bootstrap interval)",
                marked=sc.gate.significant,
            )

        files[f"plots/slices_delta_{m}.png"] = write
    return files


def format_slices(sc: SliceComparison) -> list[str]:
    """Printed lines: the tested slices and every significant regression."""
    g = sc.gate
    method = {"holm": "Holm", "bh": "Benjamini-Hochberg"}[g.adjust]
    lines = [
        f"  slices: {int(g.gated.sum())} of {len(sc.table)} tested ({sc.metric}, >= "
        f"{g.min_videos} videos, {method}-adjusted one-sided McNemar, alpha {g.alpha:g}): "
        f"{int(g.significant.sum())} significant regression(s)"
    ]
    for i in np.flatnonzero(g.significant):
        lines.append(
            f"    REGRESSION {g.labels[i]} ({int(g.n_videos[i])} videos): {g.delta[i]:+.4f} "
            f"[{g.ci_low[i]:+.4f}, {g.ci_high[i]:+.4f}], adjusted p {g.p_adjusted[i]:.3g}"
        )
    return lines


__all__: Sequence[str] = [
    "SliceComparison",
    "SliceTestSettings",
    "compare_slices",
    "format_slices",
    "slice_files",
    "slice_metrics",
    "slice_params",
    "slice_summary",
    "slice_test_settings",
]
