"""Synthetic episode-verification data: a catalog with wrong metadata and two reader models.

Videos belong to series (with seasons of up to 24 episodes). About 8 % of the videos carry a
wrong episode number in the metadata (off by one, a swap within the season, or a stray
number). A model reads each video correctly with a per-video probability ``p`` that depends on
how hard the video is and how good the model is; it reports a confidence close to ``p``
(calibrated-ish). When it misreads a video whose metadata is wrong, it often reads the same
wrong burned-in number, which is the costly case: a missed mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# Model name -> skill: shifts the per-video probability of reading the episode right.
DEMO_EPISODE_MODELS = {"episode_baseline": 0.0, "episode_candidate": 1.2}
MISMATCH_RATE = 0.08
BASE = 3.2
NOISE = 0.4


@dataclass(frozen=True)
class EpisodeDemo:
    """The evaluation set and, per model, the full table (truth columns + its predictions)."""

    truth: pd.DataFrame
    models: dict[str, pd.DataFrame]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def make_episode_demo(n_videos: int = 600, seed: int = 0) -> EpisodeDemo:
    """Generate an episode evaluation set and the tables of two demo models.

    Args:
        n_videos: number of videos.
        seed: random seed (the same seed gives the same tables).

    Returns:
        An :class:`EpisodeDemo`. ``truth`` has video_id, series_id, season, metadata_episode,
        true_episode; each model table adds predicted_episode and confidence, in a shuffled
        row order of its own.
    """
    rng = np.random.default_rng(seed)
    n_series = max(1, n_videos // 50)
    series = rng.integers(0, n_series, n_videos)
    season = rng.integers(1, 6, n_videos)
    n_episodes = rng.integers(8, 25, n_series)[series]
    true = rng.integers(1, n_episodes + 1)

    meta = true.copy()
    wrong = np.zeros(n_videos, dtype=bool)
    wrong[rng.choice(n_videos, size=round(MISMATCH_RATE * n_videos), replace=False)] = True
    kind = rng.integers(0, 3, n_videos)
    off_by_one = np.where(true > 1, true - 1, true + 1)
    swapped = (true - 1 + rng.integers(1, n_episodes)) % n_episodes + 1
    stray = true + rng.integers(25, 100, n_videos)
    meta[wrong] = np.select([kind == 0, kind == 1], [off_by_one, swapped], stray)[wrong]

    truth = pd.DataFrame(
        {
            "video_id": [f"ep{i:06d}" for i in range(n_videos)],
            "series_id": [f"series{s:02d}" for s in series],
            "season": season,
            "metadata_episode": meta,
            "true_episode": true,
        }
    )
    # Some series are harder to read (small or stylised burned-in text), some videos too.
    series_difficulty = rng.normal(0.0, 0.8, n_series)[series]
    video_difficulty = rng.normal(0.0, 1.3, n_videos)
    models = {}
    for index, (name, skill) in enumerate(DEMO_EPISODE_MODELS.items()):
        p = _sigmoid(BASE + skill - series_difficulty - video_difficulty)
        right = rng.random(n_videos) < p
        # A misread: the (wrong) burned-in number when there is one, else a near or stray one.
        copies_metadata = wrong & (rng.random(n_videos) < 0.6)
        near = np.where(rng.random(n_videos) < 0.5, true + 1, np.maximum(true - 1, 0))
        near = np.where(near == true, true + 2, near)
        misread = np.where(copies_metadata, meta, near)
        misread = np.where(misread == true, true + 3, misread)
        predicted = np.where(right, true, misread)
        # Calibrated-ish: the model's confidence is p, blurred on the logit scale.
        confidence = _sigmoid(np.log(p / (1 - p)) + rng.normal(0.0, NOISE, n_videos))
        table = truth.assign(
            predicted_episode=predicted, confidence=np.round(confidence, 4)
        ).sample(frac=1.0, random_state=seed + index)
        models[name] = table.reset_index(drop=True)
    return EpisodeDemo(truth=truth, models=models)
