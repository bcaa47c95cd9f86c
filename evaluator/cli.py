"""Hydra entry points: compose the config, call one function, report.

A data or config error (`InputError`) prints one paragraph and exits with status 2; an MLflow
failure (`TrackingError`) exits with status 3 after the local outputs were written. Anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from evaluator.config import register_configs
from evaluator.errors import InputError, TrackingError
from evaluator.tasks.episode import EpisodeOutcome, run_episode
from evaluator.tasks.multirun import PARENT_ENV, report_job_failure
from evaluator.tasks.poster import PosterOutcome, run_poster
from evaluator.tasks.slicing import slices_line
from evaluator.tracking.mlflow_run import ui_hint

register_configs()

EXIT_INPUT_ERROR = 2
EXIT_TRACKING_ERROR = 3


def format_summary(outcome: PosterOutcome, cfg: DictConfig) -> str:
    """The printed summary: headline metrics, counts, where the run and files are."""
    m = outcome.result.metrics
    k = outcome.result.settings.k_max
    ks = outcome.result.settings.report_ks
    head = "  ".join(f"recall@{j} {m[f'recall_at_{j}']:.4f}" for j in ks)
    lines = [
        f"video-eval poster: {Path(str(cfg.data.predictions)).name} vs "
        f"{Path(str(cfg.data.experts)).name}",
        f"  {head}  mrr@{k} {m[f'mrr_at_{k}']:.4f}",
        f"  precision@{k} {m[f'precision_at_{k}']:.4f}  expert_coverage@{k} "
        f"{m[f'expert_coverage_at_{k}']:.4f}",
        f"  videos: {int(m['n_videos_eligible'])} eligible, {int(m['n_videos_excluded'])} "
        f"excluded (< {outcome.result.settings.min_expert_frames} expert frames), "
        f"{int(m['n_videos_without_predictions'])} without predictions, "
        f"{int(m['n_prediction_videos_unknown'])} unknown to the experts",
        f"  frames: {int(m['n_predictions_truncated'])} predictions past k_max ignored, "
        f"{int(m['n_expert_duplicates_dropped'])} duplicate expert rows dropped",
        f"  outputs: {outcome.output_dir}",
    ]
    sm = outcome.summary["metrics"]
    if (line := slices_line(outcome.summary)) is not None:
        lines.insert(-1, line)
    if "n_embeddings_computed" in sm:
        lines.insert(
            -1,
            f"  embeddings: {sm['n_embeddings_computed']} computed, "
            f"{sm['n_embeddings_cached']} from the cache ({cfg.embedder.model})",
        )
    if outcome.run is not None:
        lines.append(
            f"  MLflow run {outcome.run.run_id} in experiment '{cfg.mlflow.experiment}' "
            f"({outcome.run.tracking_uri})"
        )
        run = outcome.run
        lines.append(f"  view: {ui_hint(run.tracking_uri, run.experiment_id, run.run_id)}")
    return "\n".join(lines)


def format_episode_summary(outcome: EpisodeOutcome, cfg: DictConfig) -> str:
    """The printed summary of task=episode: headline metrics and where the run and files are."""
    m = outcome.result.metrics
    s = outcome.settings
    name = s.target_name
    at = outcome.result.coverage_at_accuracy[0]
    threshold = f"threshold {at.threshold:.4g}" if at.n_auto else "no threshold reaches it"
    lines = [
        f"video-eval episode: {Path(str(cfg.data.episodes)).name} ({int(m['n_videos'])} videos)",
        f"  episode_accuracy {m['episode_accuracy']:.4f}  mismatch precision "
        f"{m['mismatch_precision']:.4f}  recall {m['mismatch_recall']:.4f}  "
        f"f1 {m['mismatch_f1']:.4f}",
        f"  at confidence >= {s.confidence_threshold:g}: coverage {m['coverage']:.4f}  "
        f"auto_accuracy {m['auto_accuracy']:.4f}  missed mismatches auto-accepted "
        f"{int(m['n_missed_mismatches_auto_accepted'])}  false flags "
        f"{int(m['n_false_flags_auto'])}",
        f"  {name} {m[name]:.4f} [{m[name + '_ci_low']:.4f}, {m[name + '_ci_high']:.4f}] "
        f"({threshold})",
    ]
    if outcome.groups is None:
        lines.append(f"  no per-group breakdown (no '{s.group_by}' column)" if s.group_by else "")
    lines.append(slices_line(outcome.summary) or "")
    lines.append(f"  outputs: {outcome.output_dir}")
    if outcome.run is not None:
        run = outcome.run
        lines.append(
            f"  MLflow run {run.run_id} in experiment '{cfg.mlflow.experiment}' "
            f"({run.tracking_uri})"
        )
        lines.append(f"  view: {ui_hint(run.tracking_uri, run.experiment_id, run.run_id)}")
    return "\n".join(line for line in lines if line)


def _fail(message: str, code: int) -> None:
    print(f"video-eval: error: {message}", file=sys.stderr)
    sys.exit(code)


@hydra.main(config_path="conf", config_name="evaluate", version_base=None)
def main(cfg: DictConfig) -> None:
    """``video-eval``: evaluate a predictions file and record the evaluation in MLflow."""
    from evaluator.tasks.poster_files import enable_process_worker

    enable_process_worker()  # the console script's main module is safe to import again
    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    parent = os.environ.get(PARENT_ENV) if multirun else None
    runners: dict[str, Callable[..., Any]] = {"poster": run_poster, "episode": run_episode}
    summaries: dict[str, Callable[..., str]] = {
        "poster": format_summary,
        "episode": format_episode_summary,
    }
    task = str(cfg.task.name)
    try:
        if task not in runners:
            raise InputError(
                f"config: task={task} is not available; use task=poster or task=episode."
            )
        outcome = runners[task](cfg, output_dir, parent_run_id=parent)
    except (InputError, TrackingError) as exc:
        if multirun:
            # Reported here and counted by the multirun callback; the other jobs go on.
            report_job_failure(" ".join(hydra_cfg.overrides.task), exc)
            return
        if isinstance(exc, InputError):
            _fail(str(exc), EXIT_INPUT_ERROR)
        _fail(f"{exc}\nThe results are saved in {output_dir}.", EXIT_TRACKING_ERROR)
        return
    if cfg.print_summary:
        print(summaries[task](outcome, cfg))


# ----------------------------------------------------------------------------- compare / promote


EXIT_REJECT = 1  # video-eval-promote only: the candidate was rejected (a decision, not an error)
EXIT_INTERNAL_ERROR = 4  # an unexpected exception: a bug, never mistaken for a decision


def _run_edge(program: str, fn: Callable[[], tuple[str | None, int]], output_dir: Path) -> None:
    """Run one command body and exit with its code; user errors exit 2, MLflow errors 3
    (both without a traceback), anything else 4 with the traceback."""
    try:
        text, code = fn()
    except InputError as exc:
        print(f"{program}: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_INPUT_ERROR)
    except TrackingError as exc:
        print(f"{program}: error: {exc}\nLocal outputs (if any): {output_dir}.", file=sys.stderr)
        sys.exit(EXIT_TRACKING_ERROR)
    except Exception:
        import traceback

        traceback.print_exc()
        print(
            f"{program}: internal error (a bug in video-evaluator, not a decision): the "
            f"traceback is above; exit status {EXIT_INTERNAL_ERROR}.",
            file=sys.stderr,
        )
        sys.exit(EXIT_INTERNAL_ERROR)
    if text:
        print(text)
    if code:
        sys.exit(code)


@hydra.main(config_path="conf", config_name="compare", version_base=None)
def compare_main(cfg: DictConfig) -> None:
    """``video-eval-compare candidate=REF baseline=REF``: paired comparison of two evaluations.

    Exit status: 0 compared and recorded, 2 input or config error, 3 MLflow error, 4 a bug.
    """
    from evaluator.decisions.compare import format_compare_summary, run_compare

    output_dir = Path(HydraConfig.get().runtime.output_dir)

    def body() -> tuple[str | None, int]:
        outcome = run_compare(cfg, output_dir)
        return (format_compare_summary(outcome) if cfg.print_summary else None), 0

    _run_edge("video-eval-compare", body, output_dir)


@hydra.main(config_path="conf", config_name="promote", version_base=None)
def promote_main(cfg: DictConfig) -> None:
    """``video-eval-promote model.name=NAME model.version=V``: gate promotion on evidence.

    Exit status: 0 PROMOTE (applied, or a dry run that would promote), 1 REJECT, 2 could not
    decide (input or config), 3 MLflow error, 4 a bug. decision.json in the output directory
    (and on the evidence run) holds the numbers.
    """
    from evaluator.decisions.promote import format_promote_summary, run_promote

    output_dir = Path(HydraConfig.get().runtime.output_dir)

    def body() -> tuple[str | None, int]:
        outcome = run_promote(cfg, output_dir)
        text = format_promote_summary(outcome, cfg) if cfg.print_summary else None
        return text, (0 if outcome.decision.promote else EXIT_REJECT)

    _run_edge("video-eval-promote", body, output_dir)


@hydra.main(config_path="conf", config_name="register", version_base=None)
def register_main(cfg: DictConfig) -> None:
    """``video-eval-register model.name=NAME model.version=V``: register an evaluated version.

    Exit status: 0 registered (or already), 2 input or config error, 3 MLflow error, 4 a bug.
    """
    from evaluator.integrations.registration import format_registered, run_register

    output_dir = Path(HydraConfig.get().runtime.output_dir)

    def body() -> tuple[str | None, int]:
        done = run_register(cfg)
        text = format_registered(done, str(cfg.mlflow.tracking_uri))
        return (text if cfg.print_summary else None), 0

    _run_edge("video-eval-register", body, output_dir)
