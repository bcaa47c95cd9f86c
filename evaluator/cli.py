"""Hydra entry points: compose the config, check it, call one function, report.

Every command follows one exit-code contract (docs/reliability.md):

====  ====================================================================================
code  meaning
====  ====================================================================================
0     success (``video-eval-promote``: PROMOTE)
1     ``video-eval-promote`` only: REJECT
2     input or config error: a bad file, column, path or value, Hydra's own config errors
      (unknown key, wrong type, unknown config group option); one paragraph, no traceback
3     a service failed: MLflow could not be reached or refused a write (local outputs kept;
      the message names the ``video-eval-record`` command that records them later), or a
      Spark job failed (``engine=spark``: the message names the stage and its root error)
4     internal error: an unexpected exception, i.e. a bug; one line plus the traceback
130   interrupted (Ctrl-C, SIGINT); an MLflow run in progress is marked FAILED
143   stopped by SIGTERM; as for 130
====  ====================================================================================

The exit status is worked out in one place, `exit_status`. The signal handlers
(`evaluator.lifecycle`) are installed before anything else is imported: a signal is recorded
and the work stops at its next safe point (docs/reliability.md#signals).

The config is checked (`evaluator.config_checks`) and the tracking store probed
(`evaluator.tracking.preflight`) before torch, matplotlib or the task code is imported, so a
bad path or value is refused within a fraction of a second, a bad store within seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluator import lifecycle

lifecycle.install_in_command_process()  # first: before Hydra, MLflow or the task code loads

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from evaluator.cli_help import HELP_FLAGS, listing_groups_once  # noqa: E402
from evaluator.config import register_configs  # noqa: E402
from evaluator.config_checks import (  # noqa: E402
    check_compare_config,
    check_evaluate_config,
    check_promote_config,
)
from evaluator.engines import keep_spark_out  # noqa: E402
from evaluator.errors import InputError, ServiceError, TrackingError  # noqa: E402
from evaluator.io.output_paths import checked_output_folder, claim_output_dir  # noqa: E402
from evaluator.tasks.multirun import PARENT_ENV, report_job_failure  # noqa: E402
from evaluator.tracking.preflight import bound_http_retries, check_names, check_store  # noqa: E402
from evaluator.tracking.reachability import ui_hint  # noqa: E402

if TYPE_CHECKING:
    from evaluator.tasks.episode import EpisodeOutcome
    from evaluator.tasks.poster import PosterOutcome

register_configs()


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
    from evaluator.tasks.poster_files import embedding_lines
    from evaluator.tasks.slicing import slices_line

    sm = outcome.summary["metrics"]
    if (line := slices_line(outcome.summary)) is not None:
        lines.insert(-1, line)
    lines[-1:-1] = embedding_lines(sm, str(cfg.embedder.model))
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
    from evaluator.tasks.slicing import slices_line

    if outcome.groups is None:
        lines.append(f"  no per-group breakdown (no '{s.group_by}' column)" if s.group_by else "")
    lines.append(slices_line(outcome.summary) or "")
    from evaluator.tasks.episode_text import text_summary_lines

    lines.append(text_summary_lines(outcome.summary) or "")
    lines.append(f"  outputs: {outcome.output_dir}")
    if outcome.run is not None:
        run = outcome.run
        lines.append(
            f"  MLflow run {run.run_id} in experiment '{cfg.mlflow.experiment}' "
            f"({run.tracking_uri})"
        )
        lines.append(f"  view: {ui_hint(run.tracking_uri, run.experiment_id, run.run_id)}")
    return "\n".join(line for line in lines if line)


def record_hint(output_dir: Path | None, tracking_uri: str | None) -> str:
    """The sentence that tells how to record saved outputs later (empty when none were saved)."""
    from evaluator.tracking.records import MANIFEST_NAME, record_later_hint

    if output_dir is None or not (output_dir / MANIFEST_NAME).is_file():
        return ""
    uri = tracking_uri or ""
    return (
        f"\nThe complete results are saved in {output_dir}. Once the MLflow store answers, "
        f"record them as the same run with:\n  {record_later_hint(output_dir, uri)}"
    )


def _has_results(output_dir: Path) -> bool:
    """True when the folder holds result files (not only Hydra's .hydra/ and log)."""
    if not output_dir.is_dir():
        return False
    return any(p.name != ".hydra" and p.suffix != ".log" for p in output_dir.iterdir())


def exit_status(
    program: str,
    exc: BaseException,
    *,
    output_dir: Path | None = None,
    tracking_uri: str | None = None,
) -> int:
    """Say why a command ends on ``exc`` (on stderr) and return its exit status
    (`evaluator.lifecycle.exit_code_of`; Hydra's own config errors are input errors).

    Call it from an ``except`` block: a bug's traceback is printed.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(exc, HydraException | OmegaConfBaseException):
        print(
            f"{program}: error: config: {_hydra_message(exc)}. (`{program} --help` lists the "
            f"config groups; `{program} --cfg job` prints the composed config.)",
            file=sys.stderr,
        )
        return lifecycle.EXIT_INPUT_ERROR
    code = lifecycle.exit_code_of(exc)
    if code == lifecycle.EXIT_INTERNAL_ERROR:
        print(
            f"{program}: internal error (this is a bug in video-evaluator, not in your inputs; "
            f"please report it with the traceback below):",
            file=sys.stderr,
        )
        traceback.print_exception(exc, file=sys.stderr)
    elif code > 128:
        what = "interrupted" if code == 128 + signal.SIGINT else "stopped by SIGTERM"
        print(
            f"{program}: {what}; no partial result files were left, and an MLflow run in "
            f"progress was marked FAILED.{record_hint(output_dir, tracking_uri)}",
            file=sys.stderr,
        )
    else:
        hint = ""
        if isinstance(exc, TrackingError):
            hint = record_hint(output_dir, tracking_uri)
            if not hint and output_dir is not None and _has_results(output_dir):
                hint = f"\nLocal outputs (if any): {output_dir}."
        print(f"{program}: error: {exc}{hint}", file=sys.stderr)
    return code


def guarded(
    program: str,
    body: Callable[[], int | None],
    *,
    output_dir: Path | None = None,
    tracking_uri: str | None = None,
) -> None:
    """Run one command body under the exit-code contract (see the module docstring).

    Args:
        program: the command's name, for messages.
        body: the work; returns the exit code (None = 0).
        output_dir: where the command saves its results (named on a tracking error).
        tracking_uri: the store it records in (for the record-later command).
    """
    try:
        code = body()
        lifecycle.checkpoint()  # a signal after the last safe point still ends the command
    except SystemExit as exc:
        if not isinstance(exc, lifecycle.Interrupted):
            raise
        code = exit_status(program, exc, output_dir=output_dir, tracking_uri=tracking_uri)
    except BaseException as exc:
        code = exit_status(program, exc, output_dir=output_dir, tracking_uri=tracking_uri)
    if code:
        sys.exit(code)


def _hydra_message(exc: BaseException) -> str:
    """Hydra's error (and the OmegaConf error under it) as one paragraph."""
    parts = [str(exc)]
    cause = exc.__cause__
    if cause is not None and str(cause) not in parts[0]:
        parts.append(str(cause))
    lines = [line.strip() for part in parts for line in part.splitlines() if line.strip()]
    return " ".join(line if line[-1] in ".:;" else line + ";" for line in lines).rstrip(";")


def _hydra_run(decorated: Callable[[], Any]) -> Any:
    """Hydra's run of a command, with its output folder checked (`checked_output_folder`)."""
    with checked_output_folder(sys.argv, __file__, around="_hydra_run"):
        return decorated()


def hydra_command(program: str, decorated: Callable[[], Any]) -> Callable[[], None]:
    """Wrap a ``@hydra.main`` function so Hydra's own errors follow the exit-code contract.

    Hydra reports a config it cannot compose (unknown key, wrong type, unknown option of a
    config group, a bad override) itself and exits with status 1; here it raises instead
    (``HYDRA_FULL_ERROR``), and the error becomes one paragraph and status 2.
    """

    def entry() -> None:
        with lifecycle.command():
            bound_http_retries()
            previous = os.environ.get("HYDRA_FULL_ERROR")
            os.environ["HYDRA_FULL_ERROR"] = "1"
            asks_help = any(a in HELP_FLAGS for a in sys.argv[1:])
            try:
                with listing_groups_once() if asks_help else contextlib.nullcontext():
                    guarded(program, lambda: _hydra_run(decorated))
            finally:
                if previous is None:
                    os.environ.pop("HYDRA_FULL_ERROR", None)
                else:
                    os.environ["HYDRA_FULL_ERROR"] = previous

    entry.__doc__ = decorated.__doc__
    return entry


def probe(program: str, tracking_uri: str, cfg: DictConfig | None = None) -> None:
    """Check the tracking store answers (a few seconds at most) and say so in one line."""
    line = check_store(tracking_uri)
    check_names(cfg)  # model.name and mlflow.experiment, as MLflow allows them
    if line:
        print(f"{program}: {line}", file=sys.stderr)


def _evaluate(cfg: DictConfig, output_dir: Path, parent: str | None) -> None:
    check_evaluate_config(cfg)
    keep_spark_out(cfg)  # before the store's check imports MLflow (which imports pyspark)
    probe("video-eval", str(cfg.mlflow.tracking_uri), cfg)
    claim_output_dir(output_dir, log_name=f"{HydraConfig.get().job.name}.log")
    # The task's code (and with it MLflow, pyarrow, ...) is imported only now.
    if str(cfg.task.name) == "episode":
        from evaluator.tasks.episode import run_episode

        episode = run_episode(cfg, output_dir, parent_run_id=parent)
        if cfg.print_summary:
            print(format_episode_summary(episode, cfg))
    else:
        from evaluator.tasks.poster import run_poster

        outcome = run_poster(cfg, output_dir, parent_run_id=parent)
        if cfg.print_summary:
            print(format_summary(outcome, cfg))


@hydra.main(config_path="conf", config_name="evaluate", version_base=None)
def _evaluate_main(cfg: DictConfig) -> None:
    """``video-eval``: evaluate a predictions file and record the evaluation in MLflow."""
    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    uri = str(cfg.mlflow.tracking_uri)
    if hydra_cfg.mode != RunMode.MULTIRUN:
        guarded(
            "video-eval",
            lambda: _evaluate(cfg, output_dir, None),
            output_dir=output_dir,
            tracking_uri=uri,
        )
        return
    try:
        _evaluate(cfg, output_dir, os.environ.get(PARENT_ENV))
    except (InputError, ServiceError) as exc:
        # Reported here and counted by the multirun callback; the other jobs go on.
        hint = record_hint(output_dir, uri) if isinstance(exc, TrackingError) else ""
        report_job_failure(" ".join(hydra_cfg.overrides.task), exc, hint)


main = hydra_command("video-eval", _evaluate_main)


# ----------------------------------------------------------------------------- compare / promote


def _run_edge(program: str, fn: Callable[[], tuple[str | None, int]], output_dir: Path) -> None:
    """Run one command body under the exit-code contract: it returns (text to print, exit
    code); user errors exit 2, MLflow errors 3 (both without a traceback), bugs 4."""

    def body() -> int:
        text, code = fn()
        if text:
            print(text)
        return code

    guarded(program, body, output_dir=output_dir)


@hydra.main(config_path="conf", config_name="compare", version_base=None)
def _compare_main(cfg: DictConfig) -> None:
    """``video-eval-compare candidate=REF baseline=REF``: paired comparison of two evaluations.

    Exit status: 0 compared and recorded, 2 input or config error, 3 MLflow error, 4 a bug.
    """
    output_dir = Path(HydraConfig.get().runtime.output_dir)

    def body() -> tuple[str | None, int]:
        check_compare_config(cfg)
        probe("video-eval-compare", str(cfg.mlflow.tracking_uri))
        from evaluator.decisions.compare_command import format_compare_summary, run_compare

        outcome = run_compare(cfg, output_dir)
        return (format_compare_summary(outcome) if cfg.print_summary else None), 0

    _run_edge("video-eval-compare", body, output_dir)


compare_main = hydra_command("video-eval-compare", _compare_main)


@hydra.main(config_path="conf", config_name="promote", version_base=None)
def _promote_main(cfg: DictConfig) -> None:
    """``video-eval-promote model.name=NAME model.version=V``: gate promotion on evidence."""
    output_dir = Path(HydraConfig.get().runtime.output_dir)

    def body() -> tuple[str | None, int]:
        check_promote_config(cfg)
        probe("video-eval-promote", str(cfg.mlflow.tracking_uri))
        from evaluator.decisions.promote_command import format_promote_summary, run_promote

        outcome = run_promote(cfg, output_dir)
        text = format_promote_summary(outcome, cfg) if cfg.print_summary else None
        return text, outcome.exit_code

    _run_edge("video-eval-promote", body, output_dir)


promote_main = hydra_command("video-eval-promote", _promote_main)


@hydra.main(config_path="conf", config_name="register", version_base=None)
def _register_main(cfg: DictConfig) -> None:
    """``video-eval-register model.name=NAME model.version=V``: register an evaluated version.

    Exit status: 0 registered (or already), 2 input or config error, 3 MLflow error, 4 a bug.
    """
    output_dir = Path(HydraConfig.get().runtime.output_dir)

    def body() -> tuple[str | None, int]:
        probe("video-eval-register", str(cfg.mlflow.tracking_uri), cfg)
        from evaluator.integrations.register_command import format_registered, run_register

        done = run_register(cfg)
        text = format_registered(done, str(cfg.mlflow.tracking_uri))
        return (text if cfg.print_summary else None), 0

    _run_edge("video-eval-register", body, output_dir)


register_main = hydra_command("video-eval-register", _register_main)


# ----------------------------------------------------------------------------- record later

RECORD_USAGE = """\
usage: video-eval-record OUTPUT_DIR [mlflow.tracking_uri=URI] [mlflow.experiment=NAME]

Record the saved output folder of a video-eval run (it holds record.json) as the finished
MLflow run that a live run would have made: params, metrics, stepped curves, tables,
artifacts and the dataset input. Idempotent: a run already recorded is left as it is, and a
run cut off in the middle (the server went away) is completed in place.

  OUTPUT_DIR               the folder on the 'outputs:' line of the evaluation's summary
  mlflow.tracking_uri=URI  record there (default: the URI the evaluation used)
  mlflow.experiment=NAME   record into this experiment (default: the evaluation's)

Exit status: 0 recorded (or already recorded), 2 bad folder or argument, 3 MLflow error,
4 internal error."""

RECORD_KEYS = ("mlflow.tracking_uri", "mlflow.experiment")


def parse_record_args(argv: list[str]) -> tuple[Path, dict[str, str]]:
    """``OUTPUT_DIR [key=value ...]`` of ``video-eval-record``.

    Raises:
        InputError: no folder, an unknown key, or more than one folder.
    """
    folders: list[str] = []
    options: dict[str, str] = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            folders.append(arg)
        elif key in RECORD_KEYS and value:
            options[key] = value
        else:
            raise InputError(
                f"video-eval-record: unknown argument {arg!r}; allowed: OUTPUT_DIR and "
                f"{', '.join(k + '=...' for k in RECORD_KEYS)}."
            )
    if len(folders) != 1:
        raise InputError(
            f"video-eval-record: pass exactly one OUTPUT_DIR (got {len(folders)}).\n{RECORD_USAGE}"
        )
    folder = Path(folders[0])
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder (looked in {folder.resolve().parent}).")
    return folder, options


def record_main(argv: list[str] | None = None) -> None:
    """``video-eval-record OUTPUT_DIR [mlflow.tracking_uri=URI]``: record saved outputs."""
    args = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in args):
        print(RECORD_USAGE)
        return
    bound_http_retries()

    def body() -> None:
        from evaluator.tracking.record_later import load_saved_record, record_saved

        folder, options = parse_record_args(args)
        saved = load_saved_record(folder)
        uri = options.get("mlflow.tracking_uri", saved.destination.tracking_uri)
        probe("video-eval-record", uri)
        done = record_saved(folder, tracking_uri=uri, experiment=options.get("mlflow.experiment"))
        run = done.run
        print(
            f"video-eval-record: {folder}: {done.action} as MLflow run {run.run_id} "
            f"({run.tracking_uri})\n"
            f"  view: {ui_hint(run.tracking_uri, run.experiment_id, run.run_id)}"
        )

    with lifecycle.command():
        guarded("video-eval-record", body)
