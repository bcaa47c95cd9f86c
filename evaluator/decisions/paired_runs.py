"""Two evaluation runs as a pair: whether they are comparable, their aligned per-video tables,
and the `Comparison` that holds every paired number of the two.

Shared by the per-task comparisons (`compare_poster`, `compare_episode`, `compare_slices`), the
record (`compare_record`) and the ``video-eval-compare`` / ``video-eval-promote`` commands.
Reads the runs' artifacts from MLflow through `evaluator.tracking.registry`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from evaluator.core.paired_stats import (
    Alignment,
    PairedDelta,
    SweepDelta,
    align_videos,
    paired_delta,
)
from evaluator.core.slice_tests import SliceGate
from evaluator.errors import InputError
from evaluator.report.plots import Curve
from evaluator.tracking.registry import EvaluationRun, artifact_names, download_artifact

# The settings that change a poster evaluation's numbers, as logged params
# (docs/metrics.md#the-match-rule).
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


def required_value(cfg: DictConfig, key: str, usage: str) -> str:
    """The stripped value of config ``key`` (InputError naming ``usage`` when it is unset)."""
    value = OmegaConf.select(cfg, key)
    if value is None or not str(value).strip():
        raise InputError(f"config: {key} is required: {usage}.")
    return str(value).strip()


@dataclass(frozen=True, eq=False)
class SliceComparison:
    """The per-slice comparison of two evaluations.

    Attributes:
        metric: the 0/1 metric compared.
        table: ``slice_comparison.parquet``, one row per (column, value).
        gate: the gate's verdict (adjusted p-values, significant regressions).
        columns: the slice columns compared.
    """

    metric: str
    table: pd.DataFrame
    gate: SliceGate
    columns: tuple[str, ...]


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
        settings: the evaluations' matching settings (poster).
        video_ids: the compared videos, in the order of ``cand_values`` / ``base_values``.
        cand_values / base_values: per-video values (n, len(names)) behind ``paired``.
        slices: the per-slice comparison (`compare_slices.compare_slices`), or None.
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
    video_ids: np.ndarray | None = None
    cand_values: np.ndarray | None = None
    base_values: np.ndarray | None = None
    slices: SliceComparison | None = None

    def index(self, metric: str) -> int:
        """Column of ``metric`` in ``paired``."""
        return self.names.index(metric)

    @property
    def n_videos(self) -> int:
        """Videos compared."""
        return self.paired.n


@dataclass(frozen=True)
class ComparisonRequest:
    """Two resolved, comparable evaluation runs and how to compare them.

    Attributes:
        tracking_uri: the store both runs are in.
        candidate / baseline: the runs.
        tmp: a scratch folder for the downloaded artifacts.
        bootstrap: paired bootstrap settings.
        extra_metrics: metrics compared besides the task's own.
        one_sided_alpha: alpha of the one-sided lower bounds, or None.
        warnings: the mismatches ``allow_mismatch`` let through.
    """

    tracking_uri: str
    candidate: EvaluationRun
    baseline: EvaluationRun
    tmp: Path
    bootstrap: BootstrapSettings
    extra_metrics: Sequence[str]
    one_sided_alpha: float | None
    warnings: Sequence[str]


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


def read_run_parquet(
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


def poster_settings(run: EvaluationRun) -> dict[str, str]:
    return {key: run.params.get(key, "") for key in POSTER_SETTINGS if key in run.params}


def paired_deltas(
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


def aligned_videos(
    ct: pd.DataFrame,
    bt: pd.DataFrame,
    cand: EvaluationRun,
    base: EvaluationRun,
    warnings: list[str],
    what: str,
) -> tuple[pd.DataFrame, pd.DataFrame, Alignment, list[str]]:
    """Both per-video tables restricted to their common videos, in the same order.

    Raises:
        InputError: the two runs share no video.
    """
    align = align_videos(ct["video_id"].to_numpy(), bt["video_id"].to_numpy())
    if align.video_ids.shape[0] == 0:
        raise no_common_videos(cand, base)
    if align.n_only_candidate or align.n_only_baseline:
        warnings = [
            *warnings,
            f"{align.n_only_candidate} {what} only in the candidate and "
            f"{align.n_only_baseline} only in the baseline are left out",
        ]
    ct = ct.iloc[align.cand_index].reset_index(drop=True)
    bt = bt.iloc[align.base_index].reset_index(drop=True)
    return ct, bt, align, warnings


def no_common_videos(cand: EvaluationRun, base: EvaluationRun) -> InputError:
    return InputError(
        f"the candidate ({cand.label}, run {cand.run_id}) and the baseline ({base.label}, run "
        f"{base.run_id}) have no scored video in common, so there is nothing to compare."
    )


def paired_comparison(
    req: ComparisonRequest,
    align: Alignment,
    warnings: Sequence[str],
    values: tuple[np.ndarray, np.ndarray],
    *,
    task: str,
    names: Sequence[str],
    video_diff: pd.DataFrame,
    paired: PairedDelta | None = None,
    k_max: int = 0,
    headline: Sequence[str] | None = None,
    change_metric: str | None = None,
    curves: Sequence[Curve] = (),
    sweep: SweepDelta | None = None,
    sweep_note: str = "",
    settings: dict[str, str] | None = None,
) -> Comparison:
    """The `Comparison` of the request's runs over the aligned videos.

    ``values`` are the per-video values (candidate, baseline), one column per name; ``paired``
    defaults to their paired deltas, ``headline`` to ``names``, ``change_metric`` to the first
    name. The other keywords are as the attributes of `Comparison`.
    """
    if paired is None:
        paired = paired_deltas(values[0], values[1], req.bootstrap, req.one_sided_alpha)
    return Comparison(
        candidate=req.candidate,
        baseline=req.baseline,
        task=task,
        k_max=k_max,
        names=tuple(names),
        paired=paired,
        headline=tuple(names if headline is None else headline),
        change_metric=names[0] if change_metric is None else change_metric,
        video_diff=video_diff,
        curves=tuple(curves),
        sweep=sweep,
        sweep_note=sweep_note,
        n_only_candidate=align.n_only_candidate,
        n_only_baseline=align.n_only_baseline,
        warnings=tuple(warnings),
        bootstrap=req.bootstrap,
        one_sided_alpha=req.one_sided_alpha,
        settings=dict(settings or {}),
        video_ids=align.video_ids,
        cand_values=values[0],
        base_values=values[1],
    )
