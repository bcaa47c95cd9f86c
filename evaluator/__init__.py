"""video-evaluator: evaluate video ML models and record every evaluation in MLflow.

Public API:
    evaluate_poster, PosterSettings, PosterResult: the pure poster-frame evaluation.
    Frames: the array container it takes.
    run_poster: one evaluation end to end (files -> numbers -> outputs -> MLflow run).
    evaluate_episodes, EpisodeResult: the pure episode-verification evaluation.
    InputError, TrackingError: the errors a user can act on.
"""

from __future__ import annotations

__version__ = "0.1.0"

from evaluator.core.episode import EpisodeResult, evaluate_episodes
from evaluator.core.frames import Frames
from evaluator.core.poster import PosterResult, PosterSettings, evaluate_poster
from evaluator.errors import InputError, TrackingError

__all__ = [
    "EpisodeResult",
    "Frames",
    "InputError",
    "PosterResult",
    "PosterSettings",
    "TrackingError",
    "__version__",
    "evaluate_episodes",
    "evaluate_poster",
]
