"""``video-eval-compare``: two REFs -> runs -> aligned videos -> numbers -> comparison run.

`prepare_comparison` reads both evaluation runs back from MLflow, refuses incomparable pairs
(`evaluator.decisions.paired_runs`), aligns the per-video results by video id and computes
every number per task (`compare_poster`, `compare_episode`, `compare_slices`, on top of
`evaluator.core.paired_stats`); `compare_record.record_comparison` writes the result files and
records the comparison run. ``video-eval-promote`` (`promote_command`) reuses both.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from evaluator.decisions.compare_episode import prepare_episode
from evaluator.decisions.compare_poster import prepare_poster
from evaluator.decisions.compare_record import headline_rows, record_comparison
from evaluator.decisions.compare_slices import (
    SliceTestSettings,
    compare_slices,
    format_slices,
    slice_test_settings,
)
from evaluator.decisions.paired_runs import (
    BootstrapSettings,
    Comparison,
    ComparisonRequest,
    bootstrap_settings,
    check_comparable,
    required_value,
)
from evaluator.errors import InputError
from evaluator.tracking.reachability import ui_hint
from evaluator.tracking.records import RecordedRun
from evaluator.tracking.registry import EvaluationRun, resolve_evaluation


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
    slices: SliceTestSettings | None = None,
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
        slices: the per-slice comparison settings (default: when both runs have slices).

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
        req = ComparisonRequest(
            tracking_uri, cand, base, Path(tmp), boot, extra_metrics, one_sided_alpha, warnings
        )
        c = prepare_poster(req) if cand.task == "poster" else prepare_episode(req)
        per_slice, notes = compare_slices(
            c, tracking_uri, Path(tmp), slices or SliceTestSettings(), allow_mismatch=allow_mismatch
        )
    return dataclasses.replace(c, slices=per_slice, warnings=(*c.warnings, *notes))


# ----------------------------------------------------------------------------- the command


@dataclass(frozen=True)
class CompareOutcome:
    """What ``video-eval-compare`` produced."""

    comparison: Comparison
    summary: dict[str, Any]
    output_dir: Path
    files: list[Path]
    run: RecordedRun


def run_compare(cfg: DictConfig, output_dir: Path) -> CompareOutcome:
    """``video-eval-compare candidate=REF baseline=REF``: compare and record.

    Raises:
        InputError: a missing or unknown REF, incomparable runs, a bad config value.
        TrackingError: MLflow failed.
    """
    candidate = required_value(
        cfg, "candidate", "pass candidate=REF (for example models:/poster-ranker/2 or a run id)"
    )
    baseline = required_value(
        cfg,
        "baseline",
        "pass baseline=REF (for example models:/poster-ranker@champion or a run id)",
    )
    uri = str(cfg.mlflow.tracking_uri)
    c = prepare_comparison(
        uri,
        candidate,
        baseline,
        allow_mismatch=bool(cfg.allow_mismatch),
        bootstrap=bootstrap_settings(cfg),
        slices=slice_test_settings(cfg.slices, "slices"),
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
    if c.slices is not None:
        lines += format_slices(c.slices)
    for w in c.warnings:
        lines.append(f"  WARNING: {w}")
    return lines


def format_compare_summary(outcome: CompareOutcome) -> str:
    """The printed summary of ``video-eval-compare``."""
    run = outcome.run
    lines = [f"video-eval-compare: {outcome.comparison.task}"]
    lines += format_comparison(outcome.comparison)
    lines.append(f"  outputs: {outcome.output_dir}")
    lines.append(f"  MLflow comparison run {run.run_id} ({run.tracking_uri})")
    lines.append(f"  view: {ui_hint(run.tracking_uri, run.experiment_id, run.run_id)}")
    return "\n".join(lines)
