"""Compare two evaluations with paired statistics: REFs -> runs -> aligned videos -> numbers -> run.

`prepare_comparison` reads both evaluation runs back from MLflow, refuses incomparable pairs,
aligns the per-video results by video id and computes every number (core.comparison);
`record_comparison` writes the result files and records the comparison run. `run_compare` is
the ``video-eval-compare`` command; the promotion (`evaluator.promote_run`) reuses both steps.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from evaluator import __version__
from evaluator.core.bootstrap import bootstrap_mean_ci
from evaluator.core.comparison import (
    PairedDelta,
    SweepDelta,
    align_videos,
    change_labels,
    diff_order,
    paired_delta,
    poster_video_values,
    sweep_delta,
)
from evaluator.errors import InputError
from evaluator.outputs import Writer, write_all, write_json, write_parquet, write_text
from evaluator.report.plots import Curve, plot_delta_curve, plot_recall_curves, plot_sweep_delta
from evaluator.tracking.mlflow_run import RecordedRun, RunRecord, artifact_list, record_run
from evaluator.tracking.registry import (
    EvaluationRun,
    artifact_names,
    download_artifact,
    experiment_name,
    resolve_evaluation,
)

# The settings that change a poster evaluation's numbers (SPEC section 3), as logged params.
POSTER_SETTINGS = (
    "matching.time_tolerance_s",
    "matching.min_cosine",
    "metrics.k_max",
    "metrics.min_expert_frames",
)
TASKS = ("poster", "episode")
EPISODE_METRIC = "episode_accuracy"


@dataclass(frozen=True)
class BootstrapSettings:
    """Paired bootstrap settings (``bootstrap.*``)."""

    n_resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0


def bootstrap_settings(cfg: DictConfig) -> BootstrapSettings:
    """The checked ``bootstrap`` group.

    Raises:
        InputError: a value out of range, naming the key.
    """
    b = cfg.bootstrap
    n, conf, seed = int(b.n_resamples), float(b.confidence), int(b.seed)
    if n < 1:
        raise InputError(f"config: bootstrap.n_resamples must be >= 1, got {n}.")
    if not 0.0 < conf < 1.0:
        raise InputError(f"config: bootstrap.confidence must be in (0, 1), got {conf}.")
    if seed < 0:
        raise InputError(f"config: bootstrap.seed must be >= 0, got {seed}.")
    return BootstrapSettings(n, conf, seed)


@dataclass(frozen=True)
class Comparison:
    """Every number of one comparison, before anything is written.

    Attributes:
        candidate / baseline: the two evaluation runs.
        task: ``poster`` or ``episode``.
        k_max: the cut-off compared (the smaller k_max of the two; 0 for episode).
        names: metric names, one per column of ``paired`` (recall_at_1..K, then extras).
        paired: the paired deltas, intervals and McNemar tests per metric.
        headline: the metrics reported with their own MLflow metrics (recall@1, @5, @K or
            episode_accuracy) and the ones asked for (promotion metric, guardrails).
        change_metric: the metric whose per-video change labels ``video_diff``.
        video_diff: the per-video difference table, gained first, then lost, then same.
        curves: recall@k curves with marginal bootstrap bands over the compared videos.
        sweep: the sweep delta at recall@K, or None (a sweep missing or time-only vs not).
        sweep_note: why there is no sweep delta, or "".
        n_only_candidate / n_only_baseline: scored videos only one run has.
        warnings: the mismatches that ``allow_mismatch`` let through.
        bootstrap: the bootstrap settings used.
        one_sided_alpha: alpha of ``paired.lower_bound``, or None.
    """

    candidate: EvaluationRun
    baseline: EvaluationRun
    task: str
    k_max: int
    names: tuple[str, ...]
    paired: PairedDelta
    headline: tuple[str, ...]
    change_metric: str
    video_diff: pd.DataFrame
    curves: tuple[Curve, ...]
    sweep: SweepDelta | None
    sweep_note: str
    n_only_candidate: int
    n_only_baseline: int
    warnings: tuple[str, ...]
    bootstrap: BootstrapSettings
    one_sided_alpha: float | None
    settings: dict[str, str] = field(default_factory=dict)

    def index(self, metric: str) -> int:
        """Column of ``metric`` in ``paired``."""
        return self.names.index(metric)

    @property
    def n_videos(self) -> int:
        """Videos compared."""
        return self.paired.n


def mcnemar_name(metric: str) -> str:
    """``mcnemar_p_at_{k}`` for ``recall_at_{k}``, else ``mcnemar_p_{metric}``."""
    if metric.startswith("recall_at_"):
        return "mcnemar_p_at_" + metric.removeprefix("recall_at_")
    return f"mcnemar_p_{metric}"


def count_name(kind: str, metric: str) -> str:
    """``n_videos_{kind}_at_{k}`` for ``recall_at_{k}``, else ``n_videos_{kind}_{metric}``."""
    if metric.startswith("recall_at_"):
        return f"n_videos_{kind}_at_" + metric.removeprefix("recall_at_")
    return f"n_videos_{kind}_{metric}"


# ----------------------------------------------------------------------------- checks


def check_comparable(
    candidate: EvaluationRun, baseline: EvaluationRun, *, allow_mismatch: bool
) -> list[str]:
    """What differs between two evaluations that makes their numbers incomparable.

    Returns:
        The differences let through by ``allow_mismatch`` (empty when there are none).

    Raises:
        InputError: the runs are of different tasks (never comparable), or differ in the
            dataset or the matching / metric settings and ``allow_mismatch`` is false.
    """
    if candidate.task not in TASKS or baseline.task not in TASKS:
        raise InputError(
            f"cannot compare evaluator.task={candidate.task!r} with {baseline.task!r}: "
            f"only poster and episode evaluations can be compared."
        )
    if candidate.task != baseline.task:
        raise InputError(
            f"cannot compare a {candidate.task} evaluation (candidate {candidate.label}, run "
            f"{candidate.run_id}) with a {baseline.task} evaluation (baseline {baseline.label}, "
            f"run {baseline.run_id})."
        )
    diffs = []
    if candidate.digest != baseline.digest:
        diffs.append(
            f"dataset.digest differs (candidate {str(candidate.digest)[:12]}..., baseline "
            f"{str(baseline.digest)[:12]}...): the runs were evaluated on different expert sets"
        )
    if candidate.task == "poster":
        for key in POSTER_SETTINGS:
            c, b = candidate.params.get(key), baseline.params.get(key)
            if c != b:
                diffs.append(f"{key} differs (candidate {c}, baseline {b})")
    if diffs and not allow_mismatch:
        raise InputError(
            f"the candidate ({candidate.label}, run {candidate.run_id}) and the baseline "
            f"({baseline.label}, run {baseline.run_id}) are not comparable: "
            + "; ".join(diffs)
            + ". Evaluate both on the same expert set with the same settings, or pass "
            "allow_mismatch=true to compare them anyway (the result then carries a warning)."
        )
    return diffs


# ----------------------------------------------------------------------------- reading runs


def _read_parquet(
    tracking_uri: str, run: EvaluationRun, name: str, dst: Path, columns: Sequence[str]
) -> pd.DataFrame:
    if name not in artifact_names(tracking_uri, run.run_id):
        raise InputError(
            f"run {run.run_id} ({run.label}) has no artifact {name}: it was not recorded by a "
            f"complete video-eval {run.task} evaluation; evaluate the model again."
        )
    frame = pd.read_parquet(download_artifact(tracking_uri, run.run_id, name, dst / run.run_id))
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(
            f"run {run.run_id} ({run.label}): {name} lacks column(s) {missing}; evaluate the "
            f"model again with this version of video-eval."
        )
    if "video_id" in frame.columns:
        frame["video_id"] = frame["video_id"].astype(str)
    return frame


def _k_max(run: EvaluationRun) -> int:
    try:
        return int(run.params["metrics.k_max"])
    except (KeyError, ValueError):
        raise InputError(
            f"run {run.run_id} ({run.label}) has no valid param metrics.k_max; it is not a "
            f"poster evaluation recorded by video-eval."
        ) from None


def _first_hit_rank(table: pd.DataFrame) -> np.ndarray:
    return table["first_hit_rank"].astype("Float64").fillna(0).to_numpy(np.int64)


def _sweep_grid(frame: pd.DataFrame, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = frame[frame["k"] == k]
    tau = rows["time_tolerance_s"].to_numpy(np.float64)
    theta = rows["min_cosine"].to_numpy(np.float64)
    taus = np.unique(tau)
    if np.isnan(theta).all():
        thetas = np.array([np.nan])
        j = np.zeros(theta.shape[0], dtype=np.int64)
    else:
        thetas = np.unique(theta)
        j = np.searchsorted(thetas, theta)
    grid = np.full((taus.shape[0], thetas.shape[0]), np.nan)
    grid[np.searchsorted(taus, tau), j] = rows["recall"].to_numpy(np.float64)
    return taus, thetas, grid


def _settings(run: EvaluationRun) -> dict[str, str]:
    return {key: run.params.get(key, "") for key in POSTER_SETTINGS if key in run.params}


def prepare_comparison(
    tracking_uri: str,
    candidate_ref: str,
    baseline_ref: str,
    *,
    allow_mismatch: bool = False,
    bootstrap: BootstrapSettings | None = None,
    extra_metrics: Sequence[str] = (),
    one_sided_alpha: float | None = None,
    candidate: EvaluationRun | None = None,
    baseline: EvaluationRun | None = None,
) -> Comparison:
    """Resolve both REFs, check they are comparable, align their videos, compute the numbers.

    Args:
        tracking_uri: the MLflow store both runs are in (and where models are registered).
        candidate_ref / baseline_ref: run id, ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``.
        allow_mismatch: compare different datasets / settings anyway (with warnings).
        bootstrap: paired bootstrap settings.
        extra_metrics: more metrics to compare per video (e.g. ``mrr_at_10``, a promotion
            metric or guardrail); poster: ``recall_at_{k}`` / ``mrr_at_{k}``, episode:
            ``episode_accuracy``.
        one_sided_alpha: also compute the one-sided (1 - alpha) lower bounds.
        candidate / baseline: already resolved runs (skips resolving the REF).

    Returns:
        The :class:`Comparison`.

    Raises:
        InputError: an unknown REF, incomparable runs, a metric without per-video values.
        TrackingError: MLflow could not be read.
    """
    boot = bootstrap or BootstrapSettings()
    cand = candidate or resolve_evaluation(tracking_uri, candidate_ref)
    base = baseline or resolve_evaluation(tracking_uri, baseline_ref)
    if cand.run_id == base.run_id:
        raise InputError(
            f"the candidate ({candidate_ref}) and the baseline ({baseline_ref}) are the same "
            f"evaluation run {cand.run_id}; compare two different evaluations."
        )
    warnings = check_comparable(cand, base, allow_mismatch=allow_mismatch)
    with tempfile.TemporaryDirectory(prefix="video-eval-compare-") as tmp:
        if cand.task == "poster":
            return _prepare_poster(
                tracking_uri, cand, base, Path(tmp), boot, extra_metrics, one_sided_alpha, warnings
            )
        return _prepare_episode(
            tracking_uri, cand, base, Path(tmp), boot, extra_metrics, one_sided_alpha, warnings
        )


def _paired(
    cand: np.ndarray, base: np.ndarray, boot: BootstrapSettings, alpha: float | None
) -> PairedDelta:
    try:
        return paired_delta(
            cand,
            base,
            n_resamples=boot.n_resamples,
            confidence=boot.confidence,
            seed=boot.seed,
            one_sided_alpha=alpha,
        )
    except ValueError as exc:
        raise InputError(f"config: {exc}") from None


def _aligned(
    ct: pd.DataFrame, bt: pd.DataFrame, cand: Any, base: Any, warnings: list[str], what: str
) -> tuple[pd.DataFrame, pd.DataFrame, Any, list[str]]:
    """Both per-video tables restricted to their common videos, in the same order.

    Raises:
        InputError: the two runs share no video.
    """
    align = align_videos(ct["video_id"].to_numpy(), bt["video_id"].to_numpy())
    if align.video_ids.shape[0] == 0:
        raise _no_common_videos(cand, base)
    if align.n_only_candidate or align.n_only_baseline:
        warnings = [
            *warnings,
            f"{align.n_only_candidate} {what} only in the candidate and "
            f"{align.n_only_baseline} only in the baseline are left out",
        ]
    ct = ct.iloc[align.cand_index].reset_index(drop=True)
    bt = bt.iloc[align.base_index].reset_index(drop=True)
    return ct, bt, align, warnings


def _no_common_videos(cand: EvaluationRun, base: EvaluationRun) -> InputError:
    return InputError(
        f"the candidate ({cand.label}, run {cand.run_id}) and the baseline ({base.label}, run "
        f"{base.run_id}) have no scored video in common, so there is nothing to compare."
    )


def _prepare_poster(
    tracking_uri: str,
    cand: EvaluationRun,
    base: EvaluationRun,
    tmp: Path,
    boot: BootstrapSettings,
    extra_metrics: Sequence[str],
    alpha: float | None,
    warnings: list[str],
) -> Comparison:
    cols = ["video_id", "eligible", "first_hit_rank", "miss_reason"]
    tables = {
        "candidate": _read_parquet(tracking_uri, cand, "match_table.parquet", tmp, cols),
        "baseline": _read_parquet(tracking_uri, base, "match_table.parquet", tmp, cols),
    }
    k_max = min(_k_max(cand), _k_max(base))
    for side, t in tables.items():
        tables[side] = t[t["eligible"].astype("boolean").fillna(False).to_numpy(bool)]
    ct, bt, align, warnings = _aligned(
        tables["candidate"], tables["baseline"], cand, base, warnings, "scored videos"
    )
    c_rank, b_rank = _first_hit_rank(ct), _first_hit_rank(bt)

    names = [f"recall_at_{k}" for k in range(1, k_max + 1)]
    names += [m for m in extra_metrics if m not in names]
    try:
        c_vals = np.column_stack([poster_video_values(c_rank, m, k_max) for m in names])
        b_vals = np.column_stack([poster_video_values(b_rank, m, k_max) for m in names])
    except ValueError as exc:
        raise InputError(f"poster comparison: {exc}.") from None
    paired = _paired(c_vals, b_vals, boot, alpha)
    report_ks = sorted({k for k in (1, 5, k_max) if k <= k_max})
    headline = [f"recall_at_{k}" for k in report_ks]
    headline += [m for m in extra_metrics if m not in headline]

    # Per-video difference table: ranks, hit flags per reported k, change at k_max.
    c_hits = (c_rank >= 1) & (c_rank <= k_max)
    b_hits = (b_rank >= 1) & (b_rank <= k_max)
    change = change_labels(c_hits, b_hits)
    diff: dict[str, Any] = {
        "video_id": pd.Series(align.video_ids, dtype="string"),
        "change": pd.Series(change, dtype="string"),
        "candidate_first_hit_rank": pd.Series(c_rank, dtype="Int64").where(c_rank > 0),
        "baseline_first_hit_rank": pd.Series(b_rank, dtype="Int64").where(b_rank > 0),
    }
    for k in report_ks:
        diff[f"candidate_hit_at_{k}"] = (c_rank >= 1) & (c_rank <= k)
        diff[f"baseline_hit_at_{k}"] = (b_rank >= 1) & (b_rank <= k)
    diff["candidate_miss_reason"] = ct["miss_reason"].astype("string").fillna("")
    diff["baseline_miss_reason"] = bt["miss_reason"].astype("string").fillna("")
    video_diff = pd.DataFrame(diff)
    video_diff = video_diff.iloc[diff_order(change, align.video_ids)].reset_index(drop=True)

    # Marginal bands of each model's curve over the compared videos (same resamples).
    curves = []
    for run, vals in ((cand, c_vals), (base, b_vals)):
        band = bootstrap_mean_ci(
            vals[:, :k_max],
            n_resamples=boot.n_resamples,
            confidence=boot.confidence,
            seed=boot.seed,
        )
        curves.append(Curve(run.label, band.estimate, band.low, band.high))

    sweep, note = None, ""
    have = ["sweep.parquet" in artifact_names(tracking_uri, r.run_id) for r in (cand, base)]
    if all(have):
        sweep_cols = ["time_tolerance_s", "min_cosine", "k", "recall"]
        cs = _read_parquet(tracking_uri, cand, "sweep.parquet", tmp, sweep_cols)
        bs = _read_parquet(tracking_uri, base, "sweep.parquet", tmp, sweep_cols)
        try:
            sweep = sweep_delta(*_sweep_grid(cs, k_max), *_sweep_grid(bs, k_max))
        except ValueError as exc:
            note = f"no sweep delta: {exc}"
    else:
        missing = [r.label for r, h in zip((cand, base), have, strict=True) if not h]
        note = f"no sweep delta: no sweep.parquet in {', '.join(missing)} (sweep.enabled=false)"
    return Comparison(
        candidate=cand,
        baseline=base,
        task="poster",
        k_max=k_max,
        names=tuple(names),
        paired=paired,
        headline=tuple(headline),
        change_metric=f"recall_at_{k_max}",
        video_diff=video_diff,
        curves=tuple(curves),
        sweep=sweep,
        sweep_note=note,
        n_only_candidate=align.n_only_candidate,
        n_only_baseline=align.n_only_baseline,
        warnings=tuple(warnings),
        bootstrap=boot,
        one_sided_alpha=alpha,
        settings=_settings(cand),
    )


def _prepare_episode(
    tracking_uri: str,
    cand: EvaluationRun,
    base: EvaluationRun,
    tmp: Path,
    boot: BootstrapSettings,
    extra_metrics: Sequence[str],
    alpha: float | None,
    warnings: list[str],
) -> Comparison:
    unknown = [m for m in extra_metrics if m != EPISODE_METRIC]
    if unknown:
        raise InputError(
            f"episode comparison: no per-video values for {unknown}; episode evaluations are "
            f"compared on {EPISODE_METRIC} (use promote=episode for the promotion rule)."
        )
    cols = ["video_id", "predicted_episode", "true_episode", "confidence", "episode_correct"]
    name = "episode_videos.parquet"
    ct = _read_parquet(tracking_uri, cand, name, tmp, cols)
    bt = _read_parquet(tracking_uri, base, name, tmp, cols)
    ct, bt, align, warnings = _aligned(ct, bt, cand, base, warnings, "videos")
    c_ok = ct["episode_correct"].astype(bool).to_numpy()
    b_ok = bt["episode_correct"].astype(bool).to_numpy()
    paired = _paired(c_ok.astype(np.float64), b_ok.astype(np.float64), boot, alpha)
    change = change_labels(c_ok, b_ok)
    video_diff = pd.DataFrame(
        {
            "video_id": pd.Series(align.video_ids, dtype="string"),
            "change": pd.Series(change, dtype="string"),
            "true_episode": ct["true_episode"].to_numpy(),
            "candidate_predicted_episode": ct["predicted_episode"].to_numpy(),
            "baseline_predicted_episode": bt["predicted_episode"].to_numpy(),
            "candidate_confidence": ct["confidence"].to_numpy(),
            "baseline_confidence": bt["confidence"].to_numpy(),
            "candidate_episode_correct": c_ok,
            "baseline_episode_correct": b_ok,
        }
    )
    video_diff = video_diff.iloc[diff_order(change, align.video_ids)].reset_index(drop=True)
    return Comparison(
        candidate=cand,
        baseline=base,
        task="episode",
        k_max=0,
        names=(EPISODE_METRIC,),
        paired=paired,
        headline=(EPISODE_METRIC,),
        change_metric=EPISODE_METRIC,
        video_diff=video_diff,
        curves=(),
        sweep=None,
        sweep_note="episode evaluations have no matching-threshold sweep",
        n_only_candidate=align.n_only_candidate,
        n_only_baseline=align.n_only_baseline,
        warnings=tuple(warnings),
        bootstrap=boot,
        one_sided_alpha=alpha,
    )


# ----------------------------------------------------------------------------- what is logged


def comparison_metrics(c: Comparison) -> dict[str, float]:
    """The comparison run's metrics (step 0), by name."""
    p = c.paired
    out: dict[str, float] = {}
    for name in c.headline:
        i = c.index(name)
        out[f"delta_{name}"] = float(p.delta[i])
        out[f"delta_{name}_ci_low"] = float(p.ci_low[i])
        out[f"delta_{name}_ci_high"] = float(p.ci_high[i])
        out[f"candidate_{name}"] = float(p.cand_mean[i])
        out[f"baseline_{name}"] = float(p.base_mean[i])
        if math.isfinite(p.mcnemar_p[i]):
            out[mcnemar_name(name)] = float(p.mcnemar_p[i])
            out[count_name("gained", name)] = float(p.n_gained[i])
            out[count_name("lost", name)] = float(p.n_lost[i])
    i = c.index(c.change_metric)
    out["n_videos_gained"] = float(p.n_gained[i])
    out["n_videos_lost"] = float(p.n_lost[i])
    out["n_videos_compared"] = float(p.n)
    out["n_videos_only_candidate"] = float(c.n_only_candidate)
    out["n_videos_only_baseline"] = float(c.n_only_baseline)
    if c.sweep is not None:
        k = c.k_max
        out[f"sweep_delta_recall_at_{k}_min"] = float(np.nanmin(c.sweep.delta))
        out[f"sweep_delta_recall_at_{k}_max"] = float(np.nanmax(c.sweep.delta))
        out["sweep_n_points_candidate_better"] = float(c.sweep.n_better)
        out["sweep_n_points_candidate_worse"] = float(c.sweep.n_worse)
    return {k: v for k, v in out.items() if math.isfinite(v)}


def comparison_stepped(c: Comparison) -> dict[str, list[tuple[int, float]]]:
    """``delta_recall_at_k`` (step = k) with its interval, so the UI draws the delta curve."""
    if c.task != "poster":
        return {}
    p = c.paired
    ks = range(1, c.k_max + 1)
    return {
        "delta_recall_at_k": [(k, float(p.delta[k - 1])) for k in ks],
        "delta_recall_at_k_ci_low": [(k, float(p.ci_low[k - 1])) for k in ks],
        "delta_recall_at_k_ci_high": [(k, float(p.ci_high[k - 1])) for k in ks],
    }


def model_ref(run: EvaluationRun) -> str:
    """``models:/NAME/VERSION`` of the run's model tags, or "" when it has none."""
    if run.model_name and run.model_version:
        return f"models:/{run.model_name}/{run.model_version}"
    return ""


def comparison_tags(c: Comparison) -> dict[str, str]:
    """Tags naming both runs and both models (and any mismatch that was let through)."""
    tags = {
        "evaluator.kind": "comparison",
        "evaluator.task": c.task,
        "evaluator.version": __version__,
        "comparison.candidate_run_id": c.candidate.run_id,
        "comparison.baseline_run_id": c.baseline.run_id,
        "comparison.candidate_ref": c.candidate.ref,
        "comparison.baseline_ref": c.baseline.ref,
        "comparison.candidate_model": model_ref(c.candidate),
        "comparison.baseline_model": model_ref(c.baseline),
        "dataset.digest": c.candidate.digest or "",
        "comparison.same_dataset": str(c.candidate.digest == c.baseline.digest).lower(),
    }
    if c.warnings:
        tags["comparison.warning"] = "; ".join(c.warnings)[:5000]
    return {k: v for k, v in tags.items() if v != ""}


def headline_rows(c: Comparison) -> list[dict[str, Any]]:
    """One row per headline metric: values, delta, interval, test, gained / lost."""
    p = c.paired
    rows = []
    for name in c.headline:
        i = c.index(name)
        row: dict[str, Any] = {
            "metric": name,
            "candidate": float(p.cand_mean[i]),
            "baseline": float(p.base_mean[i]),
            "delta": float(p.delta[i]),
            "ci_low": float(p.ci_low[i]),
            "ci_high": float(p.ci_high[i]),
            "mcnemar_p": float(p.mcnemar_p[i]),
            "n_gained": float(p.n_gained[i]),
            "n_lost": float(p.n_lost[i]),
        }
        if p.lower_bound is not None:
            row["lower_bound"] = float(p.lower_bound[i])
        rows.append(row)
    return rows


def comparison_summary(c: Comparison, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """summary.json of a comparison: both runs, settings, every number, the warnings."""

    def side(run: EvaluationRun) -> dict[str, Any]:
        return {
            "ref": run.ref,
            "run_id": run.run_id,
            "run_name": run.run_name,
            "model": model_ref(run) or None,
            "dataset_digest": run.digest,
        }

    out: dict[str, Any] = {
        "task": c.task,
        "candidate": side(c.candidate),
        "baseline": side(c.baseline),
        "n_videos_compared": c.n_videos,
        "k_max": c.k_max or None,
        "settings": c.settings,
        "bootstrap": {
            "n_resamples": c.bootstrap.n_resamples,
            "confidence": c.bootstrap.confidence,
            "seed": c.bootstrap.seed,
            "paired": True,
        },
        "metrics": comparison_metrics(c),
        "headline": headline_rows(c),
        "sweep_note": c.sweep_note or None,
        "warnings": list(c.warnings),
        "evaluator_version": __version__,
    }
    out.update(extra or {})
    return out


def sweep_delta_table(s: SweepDelta) -> pd.DataFrame:
    """Long format: one row per grid point with both recalls and the delta."""
    tau, theta = np.meshgrid(s.time_tolerances_s, s.min_cosines, indexing="ij")
    return pd.DataFrame(
        {
            "time_tolerance_s": tau.ravel(),
            "min_cosine": theta.ravel(),
            "candidate_recall": s.cand.ravel(),
            "baseline_recall": s.base.ravel(),
            "delta": s.delta.ravel(),
        }
    )


def plot_writers(c: Comparison) -> dict[str, Writer]:
    """plots/sweep_delta.png, plots/recall_at_k.png, plots/delta_recall_at_k.png (poster)."""
    if c.task != "poster":
        return {}
    title = f"{c.candidate.label} vs {c.baseline.label} ({c.n_videos} videos)"
    conf = c.bootstrap.confidence
    p = c.paired
    k = c.k_max
    writers: dict[str, Writer] = {
        "plots/recall_at_k.png": lambda path: plot_recall_curves(
            list(c.curves), path, title=f"recall@k: {title}", confidence=conf
        ),
        "plots/delta_recall_at_k.png": lambda path: plot_delta_curve(
            p.delta[:k], p.ci_low[:k], p.ci_high[:k], path, title=title, confidence=conf
        ),
    }
    if c.sweep is not None:
        sweep = c.sweep
        tau = float(c.settings.get("matching.time_tolerance_s", "nan"))
        theta_text = c.settings.get("matching.min_cosine", "null")
        theta = None if theta_text in ("null", "None", "") else float(theta_text)
        writers["plots/sweep_delta.png"] = lambda path: plot_sweep_delta(
            sweep, k, path, time_tolerance_s=tau, min_cosine=theta, title=title
        )
    return writers


def record_comparison(
    c: Comparison,
    output_dir: Path,
    *,
    tracking_uri: str,
    experiment: str | None,
    run_name: str | None,
    artifact_location: str | None = None,
    plots: bool = True,
    log_table: bool = True,
    extra_tags: Mapping[str, str] | None = None,
    extra_metrics: Mapping[str, float] | None = None,
    extra_params: Mapping[str, str] | None = None,
    extra_summary: Mapping[str, Any] | None = None,
    config_yaml: str | None = None,
) -> tuple[dict[str, Any], list[Path], RecordedRun]:
    """Write the comparison's files and record the comparison run.

    Files: ``summary.json``, ``video_diff.parquet``, ``sweep_delta.parquet`` (when there is a
    sweep delta), the plots, ``config.yaml``. The run (in ``experiment``, default the
    candidate evaluation's experiment) gets the metrics, the tags of `comparison_tags`, the
    files, and ``video_diff.json`` via ``mlflow.log_table``.

    Returns:
        (summary, written files, the recorded run).

    Raises:
        TrackingError: MLflow failed (the local files are written; the run is FAILED).
    """
    summary = comparison_summary(c, extra_summary)
    files: dict[str, Writer] = {
        "summary.json": write_json(summary),
        "video_diff.parquet": write_parquet(c.video_diff),
    }
    if c.sweep is not None:
        files["sweep_delta.parquet"] = write_parquet(sweep_delta_table(c.sweep))
    if plots:
        files.update(plot_writers(c))
    if config_yaml is not None:
        files["config.yaml"] = write_text(config_yaml)
    written = write_all(output_dir, files)

    exp = experiment or experiment_name(tracking_uri, c.candidate.experiment_id)
    name = run_name or f"compare {c.candidate.label} vs {c.baseline.label}"
    params = {
        "compare.candidate": c.candidate.ref,
        "compare.baseline": c.baseline.ref,
        "compare.bootstrap.n_resamples": str(c.bootstrap.n_resamples),
        "compare.bootstrap.confidence": str(c.bootstrap.confidence),
        "compare.bootstrap.seed": str(c.bootstrap.seed),
        **({"compare.k_max": str(c.k_max)} if c.k_max else {}),
        **c.settings,
        **(extra_params or {}),
    }
    tags = {**comparison_tags(c), "mlflow.note.content": note_text(c), **(extra_tags or {})}
    record = RunRecord(
        params=params,
        tags=tags,
        metrics={**comparison_metrics(c), **(extra_metrics or {})},
        stepped=comparison_stepped(c),
        artifacts=artifact_list(written, output_dir),
        tables={"video_diff.json": c.video_diff} if log_table else {},
    )
    run = record_run(
        tracking_uri=tracking_uri,
        experiment=exp,
        run_name=name,
        record=record,
        artifact_location=artifact_location,
    )
    return summary, written, run


def note_text(c: Comparison) -> str:
    """The run description shown in the MLflow UI: what was compared, the headline."""
    rows = headline_rows(c)
    level = f"{c.bootstrap.confidence:.0%}"
    parts = [
        f"{r['metric']} {r['delta']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]" for r in rows
    ]
    text = (
        f"Paired comparison of {c.candidate.label} (run {c.candidate.run_id}) against "
        f"{c.baseline.label} (run {c.baseline.run_id}) on {c.n_videos} videos; deltas with "
        f"{level} paired bootstrap intervals: " + "; ".join(parts) + "."
    )
    if c.warnings:
        text += " WARNING: " + "; ".join(c.warnings) + "."
    return text


# ----------------------------------------------------------------------------- the command


@dataclass(frozen=True)
class CompareOutcome:
    """What ``video-eval-compare`` produced."""

    comparison: Comparison
    summary: dict[str, Any]
    output_dir: Path
    files: list[Path]
    run: RecordedRun


def _required(cfg: DictConfig, key: str, example: str) -> str:
    value = OmegaConf.select(cfg, key)
    if value is None or not str(value).strip():
        raise InputError(f"config: {key} is required: pass {key}=REF (for example {example}).")
    return str(value).strip()


def run_compare(cfg: DictConfig, output_dir: Path) -> CompareOutcome:
    """``video-eval-compare candidate=REF baseline=REF``: compare and record.

    Raises:
        InputError: a missing or unknown REF, incomparable runs, a bad config value.
        TrackingError: MLflow failed.
    """
    candidate = _required(cfg, "candidate", "models:/poster-ranker/2 or a run id")
    baseline = _required(cfg, "baseline", "models:/poster-ranker@champion or a run id")
    uri = str(cfg.mlflow.tracking_uri)
    c = prepare_comparison(
        uri,
        candidate,
        baseline,
        allow_mismatch=bool(cfg.allow_mismatch),
        bootstrap=bootstrap_settings(cfg),
    )
    summary, files, run = record_comparison(
        c,
        output_dir,
        tracking_uri=uri,
        experiment=cfg.mlflow.experiment,
        run_name=cfg.run_name,
        artifact_location=cfg.mlflow.artifact_location,
        plots=bool(cfg.plots),
        log_table=bool(cfg.mlflow.log_table),
        config_yaml=OmegaConf.to_yaml(cfg, resolve=True),
    )
    return CompareOutcome(c, summary, output_dir, files, run)


def format_comparison(c: Comparison) -> list[str]:
    """The printed table: one line per headline metric."""
    level = f"{c.bootstrap.confidence:.0%}"
    lines = [
        f"  {c.candidate.label} (candidate, run {c.candidate.run_id}) vs {c.baseline.label} "
        f"(baseline, run {c.baseline.run_id}) on {c.n_videos} videos",
        f"  {'metric':<18} {'candidate':>9} {'baseline':>9} {'delta':>8}  "
        f"{level + ' paired CI':<20} {'McNemar p':>9} {'gained':>6} {'lost':>5}",
    ]
    for r in headline_rows(c):
        p = "-" if not math.isfinite(r["mcnemar_p"]) else f"{r['mcnemar_p']:.4f}"
        g = "-" if not math.isfinite(r["n_gained"]) else f"{int(r['n_gained'])}"
        lo = "-" if not math.isfinite(r["n_lost"]) else f"{int(r['n_lost'])}"
        ci = f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]"
        lines.append(
            f"  {r['metric']:<18} {r['candidate']:9.4f} {r['baseline']:9.4f} "
            f"{r['delta']:+8.4f}  {ci:<20} {p:>9} {g:>6} {lo:>5}"
        )
    if c.sweep is not None:
        n = c.sweep.delta.size
        lines.append(
            f"  sweep: candidate better at {c.sweep.n_better} of {n} threshold grid points, "
            f"worse at {c.sweep.n_worse} (plots/sweep_delta.png)"
        )
    elif c.sweep_note:
        lines.append(f"  {c.sweep_note}")
    for w in c.warnings:
        lines.append(f"  WARNING: {w}")
    return lines


def format_compare_summary(outcome: CompareOutcome) -> str:
    """The printed summary of ``video-eval-compare``."""
    from evaluator.tracking.mlflow_run import ui_hint

    run = outcome.run
    lines = [f"video-eval-compare: {outcome.comparison.task}"]
    lines += format_comparison(outcome.comparison)
    lines.append(f"  outputs: {outcome.output_dir}")
    lines.append(f"  MLflow comparison run {run.run_id} ({run.tracking_uri})")
    lines.append(f"  view: {ui_hint(run.tracking_uri, run.experiment_id, run.run_id)}")
    return "\n".join(lines)
