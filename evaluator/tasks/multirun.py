"""Many models in one command: ``video-eval -m data.predictions=a.parquet,b.parquet``.

A Hydra callback opens a parent MLflow run before the first job; each job's evaluation is
recorded as a child of it (tag ``mlflow.parentRunId``); after the last job the parent gets a
comparison table (``comparison.parquet`` + ``mlflow.log_table``) and a plot of all recall@k
curves, and is ended. A job that fails on bad input is reported and the others go on; the
command then exits non-zero.
"""

from __future__ import annotations

import atexit
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from evaluator import __version__
from evaluator.errors import InputError, ServiceError, TrackingError
from evaluator.lifecycle import EXIT_INPUT_ERROR, EXIT_INTERNAL_ERROR, exit_code_of

if TYPE_CHECKING:
    import pandas as pd

    from evaluator.report.plots import Curve
    from evaluator.tracking.parent_run import ChildRun

# Hydra builds this callback for every `video-eval` run, multirun or not: the heavy imports
# (MLflow, pandas, matplotlib) are made by the methods that need them.

PARENT_ENV = "VIDEO_EVAL_PARENT_RUN_ID"

# Jobs of this process that failed on bad input or tracking (the job reports and returns, so
# Hydra's sweeper goes on with the other jobs); read by the callback at the end.
_FAILED_JOBS: list[tuple[str, BaseException]] = []


def report_job_failure(label: str, exc: InputError | ServiceError, hint: str = "") -> None:
    """Print a failed job's error (one paragraph, no traceback, then ``hint``) and remember it."""
    print(f"video-eval: error in job [{label}]: {exc}{hint}", file=sys.stderr)
    _FAILED_JOBS.append((label, exc))


CURVES = ("recall_at_k", "recall_at_k_ci_low", "recall_at_k_ci_high")


def poster_columns(k_max: int) -> list[str]:
    """The comparison table's metric columns for the poster task."""
    cols = []
    for k in sorted({k for k in (1, 5, k_max) if k <= k_max}):
        cols += [f"recall_at_{k}", f"recall_at_{k}_ci_low", f"recall_at_{k}_ci_high"]
    return cols + [
        f"mrr_at_{k_max}",
        f"precision_at_{k_max}",
        f"expert_coverage_at_{k_max}",
        "n_videos_eligible",
    ]


def comparison_table(children: list[ChildRun], metric_columns: list[str] | None) -> pd.DataFrame:
    """One row per model: names, references and the headline metrics with their intervals.

    ``metric_columns`` None = every metric any child has.
    """
    import numpy as np
    import pandas as pd

    if metric_columns is None:
        metric_columns = sorted({m for c in children for m in c.metrics})
    rows = []
    for c in children:
        row: dict[str, Any] = {
            "run_name": c.run_name,
            "run_id": c.run_id,
            "status": c.status,
            "model_name": c.tags.get("model.name"),
            "model_version": c.tags.get("model.version"),
            "predictions": c.params.get("data.predictions", c.params.get("data.episodes")),
            "dataset_digest": c.tags.get("dataset.digest"),
        }
        row.update({m: c.metrics.get(m, np.nan) for m in metric_columns})
        rows.append(row)
    return pd.DataFrame(rows)


class MultirunComparison(Callback):
    """Hydra callback: parent run, per-job failure reports, the comparison at the end."""

    def __init__(self) -> None:
        self.parent_run_id: str | None = None
        self.experiment_id: str | None = None
        self.tracking_uri = ""
        self.failures: list[tuple[str, BaseException]] = []

    def _abandon(self) -> None:
        # A job raised a bug: Hydra's sweeper re-raises it before on_multirun_end, so the
        # parent would stay RUNNING; end it FAILED when the process exits.
        if self.parent_run_id is not None:
            from evaluator.tracking.parent_run import fail_parent_run

            fail_parent_run(
                self.tracking_uri,
                self.parent_run_id,
                "a multirun job failed with an unexpected error (see the log)",
            )
            self.parent_run_id = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.failures = []
        _FAILED_JOBS.clear()
        self.tracking_uri = str(config.mlflow.tracking_uri)
        sweep_dir = Path(str(config.hydra.sweep.dir))
        overrides = " ".join(str(o) for o in config.hydra.overrides.task)
        tags = {
            "evaluator.task": str(config.task.name),
            "evaluator.version": __version__,
            "evaluator.kind": "multirun",
            "multirun.overrides": overrides[:5000],
            "multirun.sweep_dir": str(sweep_dir.resolve()),
        }
        name = f"compare {sweep_dir.parent.name} {sweep_dir.name}"
        if config.get("run_name"):
            name = f"compare {config.run_name}"
        from evaluator.tracking.parent_run import start_parent_run
        from evaluator.tracking.reachability import probe_tracking_uri

        try:
            probe_tracking_uri(self.tracking_uri)
            self.parent_run_id, self.experiment_id = start_parent_run(
                str(config.mlflow.tracking_uri),
                str(config.mlflow.experiment),
                name,
                tags,
                config.mlflow.artifact_location,
            )
        except TrackingError as exc:
            print(f"video-eval: error: {exc}", file=sys.stderr)
            sys.exit(exit_code_of(exc))
        os.environ[PARENT_ENV] = self.parent_run_id
        atexit.register(self._abandon)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if job_return.status != JobStatus.FAILED:
            return
        exc = job_return._return_value
        label = " ".join(job_return.overrides or [])
        self.failures.append((label, exc))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        os.environ.pop(PARENT_ENV, None)
        if self.parent_run_id is None or self.experiment_id is None:
            return
        uri = self.tracking_uri
        self.failures.extend(_FAILED_JOBS)
        from evaluator.tracking.parent_run import fail_parent_run

        try:
            self._finish(config, uri)
        except Exception as exc:
            fail_parent_run(uri, self.parent_run_id, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self.parent_run_id = None
        if self.failures:
            codes = {exit_code_of(e) for _, e in self.failures}
            print(
                f"video-eval: {len(self.failures)} of the multirun's jobs failed (see above).",
                file=sys.stderr,
            )
            # 2: bad input, tracking or a Spark job in some job; 4: a job failed with a bug.
            sys.exit(EXIT_INTERNAL_ERROR if EXIT_INTERNAL_ERROR in codes else EXIT_INPUT_ERROR)

    def _finish(self, config: DictConfig, uri: str) -> None:
        import pandas as pd

        from evaluator.io.outputs import Writer, write_all, write_parquet
        from evaluator.report.plots import plot_recall_curves
        from evaluator.tracking.mlflow_run import RunRecord, artifact_list
        from evaluator.tracking.parent_run import child_runs, finish_parent_run

        assert self.parent_run_id is not None and self.experiment_id is not None
        children = child_runs(uri, self.experiment_id, self.parent_run_id, CURVES)
        k_max = int(config.metrics.k_max)
        columns = poster_columns(k_max) if config.task.name == "poster" else None
        table = comparison_table(children, columns)
        out_dir = Path(str(config.hydra.sweep.dir))
        files: dict[str, Writer] = {"comparison.parquet": write_parquet(table)}
        curves = [_curve(c, k_max) for c in children if "recall_at_k" in c.curves]
        if curves and config.plots:
            conf = float(config.metrics.bootstrap.confidence)
            files["plots/recall_at_k_comparison.png"] = lambda p: plot_recall_curves(
                curves, p, title=f"recall@k of {len(curves)} models", confidence=conf
            )
        written = write_all(out_dir, files)
        digests = {c.tags.get("dataset.digest") for c in children}
        tags = {
            "multirun.n_jobs_failed": str(len(self.failures)),
            "multirun.child_run_ids": ",".join(c.run_id for c in children)[:5000],
        }
        if len(digests) > 1:
            tags["comparison.warning"] = (
                "the runs were evaluated on different expert sets "
                "(dataset.digest differs); their numbers are not "
                "comparable"
            )
        record = RunRecord(
            tags=tags,
            metrics={"n_models": float(len(children)), "n_jobs_failed": float(len(self.failures))},
            artifacts=artifact_list(written, out_dir),
            tables={"comparison.json": table} if config.mlflow.log_table else {},
        )
        finish_parent_run(uri, self.parent_run_id, record, failed=not children)
        if config.get("print_summary", True) and len(table):
            shown = [c for c in table.columns if c in ("run_name", *(columns or [])[:9])]
            with pd.option_context("display.width", 160, "display.max_columns", 20):
                print(
                    f"\nvideo-eval: {len(children)} runs under parent run {self.parent_run_id}"
                    f"\n{table[shown].to_string(index=False, float_format='%.4f')}"
                    f"\n  comparison: {out_dir / 'comparison.parquet'}"
                )


def _curve(child: ChildRun, k_max: int) -> Curve:
    import numpy as np

    from evaluator.report.plots import Curve

    def values(name: str) -> np.ndarray:
        points = dict(child.curves.get(name, []))
        return np.array([points.get(k, np.nan) for k in range(1, k_max + 1)], dtype=float)

    label = child.run_name or child.run_id[:8]
    return Curve(
        label, values("recall_at_k"), values("recall_at_k_ci_low"), values("recall_at_k_ci_high")
    )
