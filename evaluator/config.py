"""Config schemas (dataclasses) registered in Hydra's ConfigStore.

The YAML files under ``conf/`` build on these schemas, so a misspelt key fails with Hydra's own
"Did you mean" error and every value is type-checked when the config is composed. The names here
are a public interface: users script against them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from evaluator.core.sweep_defaults import DEFAULT_SWEEP_MIN_COSINES, DEFAULT_SWEEP_TIME_TOLERANCES_S


@dataclass
class TaskConfig:
    """Which model family is evaluated: ``poster`` (default) or ``episode``."""

    name: str = "poster"


@dataclass
class DataConfig:
    """Input files (docs/inputs.md#what-is-refused); relative paths: to the working directory."""

    experts: str | None = None
    predictions: str | None = None
    image_root: str | None = None
    episodes: str | None = None
    # Per-video metadata (video_id + genre, series, duration_s, ...) for metrics per slice.
    slices: str | None = None


@dataclass
class SlicesConfig:
    """Metrics per slice of the catalog, from the ``data.slices`` metadata table."""

    # The slice columns; null = every column of the file but video_id.
    columns: list[str] | None = None
    # Numeric column -> bin edges [e0, e1, ...]: bins [e0, e1), [e1, e2), ... (last one closed).
    # Untyped so that `slices.bins={duration_s: [0, 600, .inf]}` works on the command line;
    # checked when the evaluation starts.
    bins: Any = None
    # Numeric columns to slice by value (each number its own slice), e.g. season.
    categorical: list[str] = field(default_factory=list)
    # Slices with fewer eligible videos are reported but never gated by compare / promote.
    min_videos: int = 30


@dataclass
class MatchingConfig:
    """The match rule (docs/metrics.md#the-match-rule); ``min_cosine: null``: time only."""

    time_tolerance_s: float = 3.0
    min_cosine: float | None = 0.5
    # off: cosines of the vectors as they are; experts: subtract the mean vector of the
    # eligible expert frames from every vector first (docs/embeddings.md).
    center: str = "off"


@dataclass
class CalibrationConfig:
    """How unrelated pairs fare against ``matching.min_cosine`` (docs/embeddings.md)."""

    # Unrelated pairs (expert frames of two different videos) computed at most; beyond, a
    # uniform sample of this many drawn with `seed`.
    max_pairs: int = 1_000_000
    seed: int = 0
    # Warn when more than this share of unrelated pairs reaches min_cosine.
    warn_rate: float = 0.05


@dataclass
class BootstrapConfig:
    """Percentile bootstrap over videos (docs/metrics.md#poster-metrics)."""

    n_resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0


@dataclass
class MetricsConfig:
    """The test set and the cut-offs (docs/metrics.md#the-match-rule and #poster-metrics)."""

    min_expert_frames: int = 5
    k_max: int = 10
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)


@dataclass
class SweepConfig:
    """Threshold sweep grid (docs/metrics.md#the-threshold-sweep)."""

    enabled: bool = True
    time_tolerances_s: list[float] = field(
        default_factory=lambda: list(DEFAULT_SWEEP_TIME_TOLERANCES_S)
    )
    min_cosines: list[float] = field(default_factory=lambda: list(DEFAULT_SWEEP_MIN_COSINES))


@dataclass
class EmbedderConfig:
    """Where frame vectors come from.

    ``precomputed``: the tables' ``embedding`` column. ``torchvision``: a torchvision
    classification backbone computes them from the ``image`` / ``video_path`` columns (the
    other keys apply; see `evaluator.embed.EmbedderSpec`). ``timm``: a timm image model
    (``model_name``, ``pretrained``, ``checkpoint``; `evaluator.embed.timm_backbone`).
    """

    name: str = "precomputed"
    model: str = "resnet50"
    weights: str | None = "DEFAULT"
    weights_path: str | None = None
    batch_size: int = 64
    num_workers: str = "auto"  # "auto" or a number of decoding worker processes
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    image_size: int = 224
    cache_dir: str | None = None
    progress: bool = True
    # embedder=timm: the timm model, its hub weights (pretrained) or a local weights file
    # (checkpoint, wins over pretrained).
    model_name: str | None = None
    pretrained: bool = True
    checkpoint: str | None = None


@dataclass
class MLflowConfig:
    """Where the evaluation is recorded (docs/mlflow.md#one-poster-evaluation)."""

    tracking_uri: str = "${oc.env:MLFLOW_TRACKING_URI,'sqlite:///mlflow.db'}"
    experiment: str = "poster-frames"
    # Artifact root for an experiment this tool creates; null = next to a sqlite:/// store
    # (<db dir>/mlartifacts), or the server's default for http(s):// URIs.
    artifact_location: str | None = None
    log_table: bool = True
    log_dataset: bool = True


@dataclass
class ModelConfig:
    """The model version whose predictions are evaluated (tags ``model.name``/``model.version``)."""

    name: str | None = None
    version: str | None = None


@dataclass
class EpisodeConfig:
    """Episode verification: automation threshold, target, breakdown.

    See docs/metrics.md#episode-verification-metrics.
    """

    # The model decides alone when confidence >= this (ties at the threshold included).
    confidence_threshold: float = 0.9
    # coverage_at_accuracy_{p}: the largest coverage whose auto-decision accuracy is >= p.
    target_accuracy: float = 0.99
    # Column of the per-group breakdown; null = none. A file without it gets no breakdown.
    group_by: str | None = "series_id"
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)


@dataclass
class ReportConfig:
    """The HTML report (``report.html``: headline numbers, plots, per-video gallery)."""

    html: bool = True
    # Videos per gallery page (the page renders only these).
    page_size: int = 50
    # Thumbnail height in pixels when the tables have an `image` column; 0 = timelines only.
    thumbnail_px: int = 96
    # Thumbnails for at most this many videos (in gallery order: misses first); the others get
    # their timeline strip only, which keeps the file small at tens of thousands of videos.
    max_thumbnail_videos: int = 300
    # Videos in the gallery at most (in gallery order: misses first); bounds the report and
    # the per-frame data kept for it on very large sets. null = every scored video.
    max_gallery_videos: int | None = 20000


@dataclass
class EngineConfig:
    """How the per-video work of an evaluation runs (config group ``engine``).

    ``local`` (default): in this process, reading the inputs in batches and holding at most
    ``memory_budget_mb`` of working set. ``spark``: on Apache Spark (``master``, ``conf``,
    ``ship_package``; an active ``SparkSession``, classic or Spark Connect, is reused when there
    is one).
    """

    name: str = "local"
    # Bound of the working set (inputs being scored), not of the catalog size.
    memory_budget_mb: int = 1024
    # Where temporary partitions go when the inputs do not fit the budget (null = system tmp).
    temp_dir: str | None = None
    # engine=spark: the master URL (local[*], spark://..., yarn, k8s://..., or sc://HOST:PORT
    # for a Spark Connect server) and Spark settings.
    master: str = "local[*]"
    conf: dict[str, str] = field(default_factory=dict)
    # engine=spark: zip this process's evaluator package and add it to the session, so the
    # executors import it (their dependencies must be on the cluster already).
    ship_package: bool = False


@dataclass
class EvaluateConfig:
    """The whole ``video-eval`` config."""

    task: TaskConfig = field(default_factory=TaskConfig)
    data: DataConfig = field(default_factory=DataConfig)
    matching: MatchingConfig = field(default_factory=MatchingConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    mlflow: MLflowConfig = field(default_factory=MLflowConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    episode: EpisodeConfig = field(default_factory=EpisodeConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    slices: SlicesConfig = field(default_factory=SlicesConfig)
    run_name: str | None = None
    plots: bool = True
    print_summary: bool = True


@dataclass
class SliceTestConfig:
    """The per-slice comparison: paired delta, CI, McNemar p, adjusted across slices."""

    # null: per slice when both evaluations recorded slices (one side only: an error);
    # true: require slices; false: ignore them.
    enabled: bool | None = None
    # holm (family-wise error) or bh (Benjamini-Hochberg, false discovery rate).
    adjust: str = "holm"
    alpha: float = 0.05
    # Smallest slice tested; null = the candidate evaluation's slices.min_videos.
    min_videos: int | None = None
    # The 0/1 metric compared per slice; null = recall_at_{k_max} (poster), episode_accuracy.
    metric: str | None = None


@dataclass
class PromoteSlicesConfig:
    """The slice gate of ``video-eval-promote``."""

    # REJECT when a slice of >= min_videos videos regresses significantly after adjustment.
    # null = true when both evaluations recorded slices; false = report slices, never block.
    block_on_regression: bool | None = None
    adjust: str = "holm"
    # null = promote.alpha.
    alpha: float | None = None
    min_videos: int | None = None
    # null = promote.metric.
    metric: str | None = None


@dataclass
class CompareMLflowConfig:
    """Where the comparison (or promotion) run is recorded and the evaluations are read from."""

    tracking_uri: str = "${oc.env:MLFLOW_TRACKING_URI,'sqlite:///mlflow.db'}"
    # null = the experiment of the candidate's evaluation run.
    experiment: str | None = None
    artifact_location: str | None = None
    log_table: bool = True


@dataclass
class CompareConfig:
    """The whole ``video-eval-compare`` config.

    ``candidate`` / ``baseline``: an evaluation run id, ``models:/NAME/VERSION`` or
    ``models:/NAME@ALIAS`` (the version's latest finished evaluation run, found through the
    ``model.name`` / ``model.version`` run tags).
    """

    candidate: str | None = None
    baseline: str | None = None
    # Compare runs on different expert sets or matching settings anyway (recorded as a warning).
    allow_mismatch: bool = False
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    slices: SliceTestConfig = field(default_factory=SliceTestConfig)
    mlflow: CompareMLflowConfig = field(default_factory=CompareMLflowConfig)
    run_name: str | None = None
    plots: bool = True
    print_summary: bool = True


@dataclass
class PromoteRuleConfig:
    """The promotion rule: a paired one-sided lower bound, guardrails, floors."""

    # Promote when the one-sided (1 - alpha) lower bound of (candidate - champion) on
    # `metric` exceeds `min_delta` (negative = non-inferiority margin).
    metric: str = "recall_at_10"
    alpha: float = 0.05
    min_delta: float = 0.0
    # metric -> largest allowed drop of the point delta (candidate - champion). The task's
    # defaults (conf/promote/poster.yaml, episode.yaml) fill these two mappings.
    guardrails: dict[str, float] = field(default_factory=dict)
    # metric -> absolute minimum of the candidate, used only when there is no champion yet.
    floors: dict[str, float] = field(default_factory=dict)
    # false = dry run: decide, record and tag, but move no alias.
    apply: bool = False
    champion_alias: str = "champion"
    previous_alias: str = "previous_champion"
    slices: PromoteSlicesConfig = field(default_factory=PromoteSlicesConfig)


@dataclass
class PromoteConfig:
    """The whole ``video-eval-promote`` config."""

    model: ModelConfig = field(default_factory=ModelConfig)
    promote: PromoteRuleConfig = field(default_factory=PromoteRuleConfig)
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    mlflow: CompareMLflowConfig = field(default_factory=CompareMLflowConfig)
    run_name: str | None = None
    plots: bool = True
    print_summary: bool = True


@dataclass
class RegisterMLflowConfig:
    """Where ``video-eval-register`` finds the evaluation and registers the version."""

    tracking_uri: str = "${oc.env:MLFLOW_TRACKING_URI,'sqlite:///mlflow.db'}"


@dataclass
class RegisterConfig:
    """The whole ``video-eval-register`` config: which evaluated version to register."""

    model: ModelConfig = field(default_factory=ModelConfig)
    mlflow: RegisterMLflowConfig = field(default_factory=RegisterMLflowConfig)
    print_summary: bool = True


_GROUPS: dict[str, Any] = {
    "task": TaskConfig,
    "data": DataConfig,
    "matching": MatchingConfig,
    "calibration": CalibrationConfig,
    "metrics": MetricsConfig,
    "sweep": SweepConfig,
    "embedder": EmbedderConfig,
    "engine": EngineConfig,
    "mlflow": MLflowConfig,
    "episode": EpisodeConfig,
    "slices": SlicesConfig,
}


def register_configs() -> None:
    """Store the schemas in Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="base_evaluate", node=EvaluateConfig)
    cs.store(name="base_compare", node=CompareConfig)
    cs.store(name="base_promote", node=PromoteConfig)
    cs.store(name="base_register", node=RegisterConfig)
    cs.store(group="promote", name="base_promote_rule", node=PromoteRuleConfig)
    for group, node in _GROUPS.items():
        cs.store(group=group, name=f"base_{group}", node=node)
