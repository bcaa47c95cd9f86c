"""video-evaluator: evaluate video ML models and record every evaluation in MLflow.

Public API:
    evaluate_poster, PosterSettings, PosterResult: the pure poster-frame evaluation.
    Frames: the array container it takes.
    evaluate_episodes, EpisodeResult: the pure episode-verification evaluation.
    evaluate_episode_text, EpisodeTextResult: its text-extraction and consensus metrics.
    InputError, TrackingError: the errors a user can act on.

The names are imported on first use, so ``import evaluator`` (which every command does) costs
nothing: a command that refuses a bad path never loads numpy.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "EpisodeResult": "evaluator.core.episode",
    "evaluate_episodes": "evaluator.core.episode",
    "EpisodeTextResult": "evaluator.core.episode_text",
    "evaluate_episode_text": "evaluator.core.episode_text",
    "Frames": "evaluator.core.frames",
    "PosterResult": "evaluator.core.poster",
    "PosterSettings": "evaluator.core.poster",
    "evaluate_poster": "evaluator.core.poster",
    "InputError": "evaluator.errors",
    "TrackingError": "evaluator.errors",
}

if TYPE_CHECKING:
    from evaluator.core.episode import EpisodeResult, evaluate_episodes
    from evaluator.core.episode_text import EpisodeTextResult, evaluate_episode_text
    from evaluator.core.frames import Frames
    from evaluator.core.poster import PosterResult, PosterSettings, evaluate_poster
    from evaluator.errors import InputError, TrackingError


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'evaluator' has no attribute {name!r}")


__all__ = [
    "EpisodeResult",
    "EpisodeTextResult",
    "Frames",
    "InputError",
    "PosterResult",
    "PosterSettings",
    "TrackingError",
    "__version__",
    "evaluate_episode_text",
    "evaluate_episodes",
    "evaluate_poster",
]
