"""The result files of one poster evaluation: summary, params, dataset input, plots, report.

The plots and the HTML report (`Visuals`) depend only on the finished numbers; `run_poster`
and the ``mlflow.models.evaluate`` plugin write them with the data files. matplotlib is
imported only where plots are drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from evaluator import __version__
from evaluator.core.bootstrap import BootstrapResult, bootstrap_mean_ci
from evaluator.core.calibration import Calibration
from evaluator.core.poster import PosterResult
from evaluator.engines.local import Scored
from evaluator.errors import InputError
from evaluator.io.outputs import Writer
from evaluator.report.calibration_plot import calibration_plot_writer
from evaluator.report.html import ReportInputs, ReportOptions, drawn_poster, report_writer
from evaluator.tasks.params import flat_params
from evaluator.tasks.slicing import SliceForest, SliceOutputs

CALIBRATION_PLOT = "plots/cosine_calibration.png"

COUNT_METRICS = (
    "n_embeddings_computed",
    "n_embeddings_cached",
    "n_frames_not_embedded",
    "n_frames_decoded",
    "n_videos_eligible",
    "n_videos_excluded",
    "n_videos_without_predictions",
    "n_prediction_videos_unknown",
    "n_predictions_truncated",
    "n_expert_duplicates_dropped",
    "n_expert_frames_eligible",
    "n_model_frames_considered",
)


def embedding_lines(metrics: dict[str, Any], model: str) -> list[str]:
    """The console's lines on the embedding (none without an image embedder)."""
    if "n_embeddings_computed" not in metrics:
        return []
    m = metrics
    return [
        f"  embeddings: {m['n_embeddings_computed']} computed, {m['n_embeddings_cached']} from "
        f"the cache ({model}); {m['n_frames_not_embedded']} frames not embedded (they can "
        "change no number)",
        f"  embedding: {m['embedding_seconds']:.1f} s, {m['embedding_frames_per_s']:.1f} "
        f"frames/s, {m.get('n_frames_decoded', 'uncounted')} video frames decoded",
    ]


def recall_intervals(result: PosterResult, cfg: DictConfig) -> BootstrapResult | None:
    """Percentile bootstrap intervals of recall@k for every k (videos resampled; None = off)."""
    boot = cfg.metrics.bootstrap
    if int(boot.n_resamples) <= 0 or result.matches.videos.shape[0] == 0:
        return None
    try:
        return bootstrap_mean_ci(
            result.hits.astype(np.float64),
            n_resamples=int(boot.n_resamples),
            confidence=float(boot.confidence),
            seed=int(boot.seed),
        )
    except ValueError as exc:
        raise InputError(f"config: metrics.bootstrap: {exc}") from None


def sweep_curves(result: PosterResult) -> dict[str, list[tuple[int, float]]]:
    """The two stepped sweep metrics (docs/metrics.md#the-threshold-sweep): overlayable curves.

    ``sweep_recall_at_{K}_by_min_cosine``: step = round(100 * theta), tau at the configured value;
    ``sweep_recall_at_{K}_by_tolerance``: step = round(10 * tau), theta at the configured value.
    """
    sweep, s = result.sweep, result.settings
    if sweep is None:
        return {}
    k = s.k_max
    i = int(np.flatnonzero(sweep.time_tolerances_s == s.time_tolerance_s)[0])
    curves = {}
    if s.min_cosine is None:
        j = 0
    else:
        j = int(np.flatnonzero(sweep.min_cosines == s.min_cosine)[0])
        curves[f"sweep_recall_at_{k}_by_min_cosine"] = [
            (round(100 * float(theta)), float(sweep.recall[i, jj, k - 1]))
            for jj, theta in enumerate(sweep.min_cosines)
        ]
    curves[f"sweep_recall_at_{k}_by_tolerance"] = [
        (round(10 * float(tau)), float(sweep.recall[ii, j, k - 1]))
        for ii, tau in enumerate(sweep.time_tolerances_s)
    ]
    return curves


def build_summary(
    scored: Scored, digest: str, cfg: DictConfig, metrics: dict[str, float]
) -> dict[str, Any]:
    """summary.json: every metric by name, plus what was evaluated and how."""
    result = scored.finished.result
    metrics = {k: (int(v) if k in COUNT_METRICS else v) for k, v in metrics.items()}
    return {
        "task": "poster",
        "metrics": metrics,
        "recall_at_k": [float(v) for v in result.recall_curve],
        "dataset_digest": digest,
        "experts": scored.experts.name,
        "predictions": scored.predictions.name,
        "rank_source": scored.predictions.rank_source,
        "model": {"name": cfg.model.name, "version": cfg.model.version},
        "settings": {
            "time_tolerance_s": result.settings.time_tolerance_s,
            "min_cosine": result.settings.min_cosine,
            "min_expert_frames": result.settings.min_expert_frames,
            "k_max": result.settings.k_max,
        },
        "evaluator_version": __version__,
    }


def params_of(cfg: DictConfig, scored: Scored) -> dict[str, str]:
    """The run's params: resolved matching / metrics / sweep / embedder / data settings."""
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    flat: dict[str, str] = {}
    for group in ("matching", "calibration", "metrics", "sweep", "embedder", "data"):
        flat.update(flat_params(group, container.get(group, {})))
    flat["data.experts_resolved"] = scored.experts.resolved
    flat["data.predictions_resolved"] = scored.predictions.resolved
    flat["predictions.rank_source"] = scored.predictions.rank_source
    flat["embedding.dim"] = "null" if scored.embedding_dim is None else str(scored.embedding_dim)
    return flat


def dataset_of(scored: Scored, digest: str, n_frames: int) -> Any:
    """The eligible expert set as an MLflow dataset: source, digest, schema; no rows copied."""
    from evaluator.tracking.datasets import FileDataset

    columns = [("video_id", "string"), ("timestamp", "double")]
    if scored.embedding_dim is not None:
        columns.append((f"embedding[{scored.embedding_dim}]", "string"))
    columns.extend(
        (str(c), "string")
        for c in scored.experts.columns
        if c not in ("video_id", "timestamp", "embedding")
    )
    path = scored.experts.path
    name = f"{path.stem} ({n_frames} eligible expert frames)"
    return FileDataset.describe(path, name, digest, columns, spark_location=scored.experts.location)


@dataclass(frozen=True)
class Visuals:
    """Everything the plots and the report are drawn from.

    Attributes:
        label: the model's name in titles.
        report_inputs: the report's data (`evaluator.report.html.DrawnPoster`, summary, intervals,
            slices).
        confidence: the intervals' confidence level, or None.
        plots: draw the plots (``plots``).
        report: the report's options, or None when ``report.html`` is off.
        slice_forest: the per-slice forest plot (``data.slices`` with ``plots``), or None.
        calibration: the similarity calibration (``plots/cosine_calibration.png``), or None.
    """

    label: str
    report_inputs: ReportInputs
    confidence: float | None
    plots: bool
    report: ReportOptions | None
    slice_forest: SliceForest | None = None
    calibration: Calibration | None = None

    def _slice_plot(self) -> str | None:
        f = self.slice_forest
        return None if f is None else f"plots/slices_{f.column}.png"

    def names(self) -> list[str]:
        """The files drawn, in drawing order (plots first: the report embeds them)."""
        s = self.report_inputs.drawn.settings
        out = []
        if self.plots:
            out += ["plots/recall_at_k.png", "plots/pairs.png"]
            if self.report_inputs.drawn.sweep is not None:
                out.append(f"plots/sweep_recall_at_{s.k_max}.png")
            if (slice_plot := self._slice_plot()) is not None:
                out.append(slice_plot)
            if self.calibration is not None:
                out.append(CALIBRATION_PLOT)
        if self.report is not None:
            out.append("report.html")
        return out

    def writers(self) -> dict[str, Writer]:
        """Relative path -> writer of every visual file."""
        plots = [n for n in self.names() if n.startswith("plots/")]
        out: dict[str, Writer] = {}
        for name in self.names():
            if name == "report.html":
                assert self.report is not None
                out[name] = report_writer(self.report_inputs, self.report, plots=plots)
            elif name == self._slice_plot():
                assert self.slice_forest is not None
                out[name] = self.slice_forest.draw
            elif name == CALIBRATION_PLOT:
                assert self.calibration is not None
                out[name] = calibration_plot_writer(self.calibration, self.label)
            else:
                out[name] = _plot_writer(self, name)
        return out


def _plot_writer(v: Visuals, name: str) -> Writer:
    def write(path: Path) -> None:
        from evaluator.report.plots import (
            Curve,
            plot_pairs,
            plot_recall_curves,
            plot_sweep_heatmap,
        )

        result = v.report_inputs.drawn
        intervals = v.report_inputs.intervals
        s = result.settings
        n = int(result.metrics["n_videos_eligible"])
        title = f"{v.label} ({n} eligible videos)"
        if name == "plots/recall_at_k.png":
            nan = np.full(s.k_max, np.nan)
            curve = Curve(
                v.label,
                result.recall_curve,
                nan if intervals is None else intervals.low,
                nan if intervals is None else intervals.high,
            )
            plot_recall_curves([curve], path, title=f"recall@k: {title}", confidence=v.confidence)
        elif name == "plots/pairs.png":
            plot_pairs(
                result.miss_reason,
                result.nearest_dt,
                result.nearest_cosine,
                path,
                time_tolerance_s=s.time_tolerance_s,
                min_cosine=s.min_cosine,
                title=title,
            )
        else:
            assert result.sweep is not None
            plot_sweep_heatmap(
                result.sweep,
                s.k_max,
                path,
                time_tolerance_s=s.time_tolerance_s,
                min_cosine=s.min_cosine,
                title=v.label,
            )

    return write


def visuals_of(
    scored: Scored,
    cfg: DictConfig,
    label: str,
    summary: dict[str, Any],
    intervals: BootstrapResult | None,
    slices: SliceOutputs | None = None,
) -> Visuals:
    """The plots and report of ``cfg`` (``plots``, ``report.*``, ``data.image_root``)."""
    root = cfg.data.image_root
    ri = ReportInputs(
        title=label,
        drawn=drawn_poster(scored.finished, scored.gallery),
        summary=summary,
        intervals=intervals,
        expert_root=Path(str(root)) if root is not None else scored.experts.folder,
        prediction_root=Path(str(root)) if root is not None else scored.predictions.folder,
        slices=None if slices is None else slices.table,
        slice_videos=None if slices is None else slices.videos,
    )
    options = None
    if cfg.report.html:
        options = ReportOptions(
            page_size=int(cfg.report.page_size),
            thumbnail_px=int(cfg.report.thumbnail_px),
            max_thumbnail_videos=int(cfg.report.max_thumbnail_videos),
        )
    confidence = None if intervals is None else float(cfg.metrics.bootstrap.confidence)
    forest = None if slices is None else slices.forest
    return Visuals(label, ri, confidence, bool(cfg.plots), options, forest)
