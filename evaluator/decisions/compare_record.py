"""What a comparison records: metrics, tags, summary.json, tables, plots and the MLflow run."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluator import __version__
from evaluator.core.paired_stats import SweepDelta
from evaluator.decisions.compare_slices import (
    slice_files,
    slice_metrics,
    slice_params,
    slice_summary,
)
from evaluator.decisions.paired_runs import Comparison, count_name, mcnemar_name
from evaluator.io.outputs import Writer, write_all, write_json, write_parquet, write_text
from evaluator.report.plots import plot_delta_curve, plot_recall_curves, plot_sweep_delta
from evaluator.tracking.mlflow_run import record_run
from evaluator.tracking.records import RecordedRun, RunRecord, artifact_list
from evaluator.tracking.registry import EvaluationRun, experiment_name


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
    if c.slices is not None:
        out.update(slice_metrics(c.slices))
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
    if c.slices is not None:
        out["slices"] = slice_summary(c.slices)
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
    if c.slices is not None:
        title = f"{c.candidate.label} vs {c.baseline.label}"
        files.update(slice_files(c.slices, title, plots))
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
        **(slice_params(c.slices) if c.slices is not None else {}),
        **(extra_params or {}),
    }
    tags = {**comparison_tags(c), "mlflow.note.content": note_text(c), **(extra_tags or {})}
    record = RunRecord(
        params=params,
        tags=tags,
        metrics={**comparison_metrics(c), **(extra_metrics or {})},
        stepped=comparison_stepped(c),
        artifacts=artifact_list(written, output_dir),
        tables=_tables(c) if log_table else {},
    )
    run = record_run(
        tracking_uri=tracking_uri,
        experiment=exp,
        run_name=name,
        record=record,
        artifact_location=artifact_location,
    )
    return summary, written, run


def _tables(c: Comparison) -> dict[str, pd.DataFrame]:
    tables = {"video_diff.json": c.video_diff}
    if c.slices is not None:
        tables["slice_comparison.json"] = c.slices.table
    return tables


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
