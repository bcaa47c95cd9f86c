"""Synthetic poster-frame data with scene structure, for the demo, the benchmark and tests.

Each video is a sequence of scenes (4-20 s). A frame's embedding is a mix of a per-video
vector, a per-scene vector, a slow drift and noise, so frames of the same scene are similar
(cosine about 0.8) and frames of different scenes much less so (about 0.3). Experts pick 3-12
frames in one to three "poster-worthy" scenes. A model of quality q puts frames near expert
picks with probability q and elsewhere otherwise, with better frames ranked higher.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

_POOL = 4096


@dataclass(frozen=True)
class DemoSet:
    """Experts and any number of model prediction tables.

    ``scenes`` maps "experts" and each model name to the scene index of every row (aligned
    with the table), so frames can be rendered as images (`evaluator.demo.images`).
    """

    experts: pd.DataFrame
    models: dict[str, pd.DataFrame]
    scenes: dict[str, np.ndarray]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class _World:
    def __init__(self, n_videos: int, dim: int, rng: np.random.Generator) -> None:
        self.rng = rng
        self.dim = dim
        self.duration = rng.uniform(60.0, 600.0, n_videos)
        self.offset = np.concatenate([[0.0], np.cumsum(self.duration)[:-1]])
        n_scenes = np.ceil(self.duration / 4.0).astype(np.int64) + 1
        lengths = rng.uniform(4.0, 20.0, int(n_scenes.sum()))
        owner = np.repeat(np.arange(n_videos), n_scenes)
        first = np.concatenate([[0], np.cumsum(n_scenes)[:-1]])
        within = np.cumsum(lengths) - np.repeat(
            np.cumsum(lengths)[first] - lengths[first], n_scenes
        )
        # Scene starts in global time (video offset + start within the video).
        self.scene_start = self.offset[owner] + within - lengths
        self.pool = _unit(rng.standard_normal((_POOL, dim))).astype(np.float32)
        self.video_vec = rng.integers(0, _POOL, n_videos)
        self.scene_vec = rng.integers(0, _POOL, owner.shape[0])
        self.drift_vec = rng.integers(0, _POOL, n_videos)

    def scene_of(self, video: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.scene_start, self.offset[video] + t, side="right") - 1

    def embed(self, video: np.ndarray, t: np.ndarray) -> np.ndarray:
        scene = self.scene_of(video, t)
        drift = (t / np.maximum(self.duration[video], 1.0)).astype(np.float32)[:, None]
        noise = self.rng.standard_normal((video.shape[0], self.dim), dtype=np.float32)
        # Frame-to-frame variation (lighting, motion) spreads same-scene cosines over ~0.5-0.95.
        jitter = self.rng.uniform(0.2, 0.9, (video.shape[0], 1)).astype(np.float32)
        vec = (
            0.55 * self.pool[self.video_vec[video]]
            + 0.75 * self.pool[self.scene_vec[scene]]
            + 0.6 * drift * self.pool[self.drift_vec[video]]
            + jitter / np.sqrt(self.dim) * noise
        )
        return vec.astype(np.float32)


def _frames_table(
    video_ids: np.ndarray, video: np.ndarray, t: np.ndarray, emb: np.ndarray
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "video_id": video_ids[video],
            "timestamp": np.round(t, 3),
            "embedding": list(emb),
        }
    )


def make_demo_set(
    n_videos: int = 300,
    *,
    dim: int = 512,
    qualities: dict[str, float] | None = None,
    seed: int = 0,
    k: int = 10,
) -> DemoSet:
    """Generate experts and model predictions.

    Args:
        n_videos: number of videos in the expert set.
        dim: embedding length.
        qualities: model name -> probability that a model frame lands near an expert pick
            (default: baseline 0.22, candidate 0.30).
        seed: random seed (the same seed gives the same tables).
        k: frames per model and video (a few videos get k + 2 to exercise truncation).

    Returns:
        A DemoSet; the tables have columns video_id, timestamp, embedding (and rank for
        "baseline"-like models, score for the others, alternating).
    """
    qualities = qualities or {"baseline": 0.22, "candidate": 0.30}
    rng = np.random.default_rng(seed)
    world = _World(n_videos, dim, rng)
    ids = np.array([f"vid{i:06d}" for i in range(n_videos)], dtype=object)

    # Experts: 3-12 frames in 1-3 poster-worthy scenes, a few seconds apart.
    n_exp = rng.integers(3, 13, n_videos)
    e_video = np.repeat(np.arange(n_videos), n_exp)
    n_good = rng.integers(1, 4, n_videos)
    good_centres = rng.uniform(0.05, 0.95, (n_videos, 3)) * world.duration[:, None]
    pick = rng.integers(0, 3, e_video.shape[0]) % n_good[e_video]
    e_t = good_centres[e_video, pick] + rng.normal(0.0, 2.5, e_video.shape[0])
    e_t = np.clip(e_t, 0.0, world.duration[e_video])
    experts = _frames_table(ids, e_video, e_t, world.embed(e_video, e_t))
    experts["_scene"] = world.scene_of(e_video, e_t)
    # A handful of exact duplicate rows, as real annotation exports have.
    dup = rng.choice(len(experts), size=max(1, n_videos // 100), replace=False)
    experts = pd.concat([experts, experts.iloc[dup]], ignore_index=True)

    models = {}
    for m_index, (name, quality) in enumerate(qualities.items()):
        n_frames = np.full(n_videos, k)
        n_frames[rng.random(n_videos) < 0.05] = k + 2
        n_frames[rng.random(n_videos) < 0.02] = 0  # silent on a few videos
        m_video = np.repeat(np.arange(n_videos), n_frames)
        near = rng.random(m_video.shape[0]) < quality
        e_start = np.concatenate([[0], np.cumsum(n_exp)[:-1]])
        anchor = e_start[m_video] + rng.integers(0, 1 << 30, m_video.shape[0]) % n_exp[m_video]
        t_near = e_t[anchor] + rng.normal(0.0, 2.0, m_video.shape[0])
        t_far = rng.uniform(0.0, 1.0, m_video.shape[0]) * world.duration[m_video]
        m_t = np.clip(np.where(near, t_near, t_far), 0.0, world.duration[m_video])
        # Score: good frames score higher on average; ranks follow the score.
        score = np.where(near, 0.5 + quality, 0.5) + rng.normal(0.0, 0.35, m_video.shape[0])
        table = _frames_table(ids, m_video, m_t, world.embed(m_video, m_t))
        table["_scene"] = world.scene_of(m_video, m_t)
        # Predictions for a few videos the experts never saw.
        n_unknown = max(1, n_videos // 150)
        u_video = np.arange(n_unknown)
        u_ids = np.array([f"unknown{i:04d}" for i in range(n_unknown)], dtype=object)
        u_t = rng.uniform(0, 60, n_unknown)
        unknown = _frames_table(u_ids, u_video, u_t, world.embed(u_video, u_t))
        unknown["_scene"] = world.scene_of(u_video, u_t)
        score = np.concatenate([score, rng.random(n_unknown)])
        table = pd.concat([table, unknown], ignore_index=True)
        if m_index % 2 == 0:
            order = np.lexsort((-score, table["video_id"].to_numpy()))
            rank = np.empty(len(table), dtype=np.int64)
            sorted_ids = table["video_id"].to_numpy()[order]
            starts = np.r_[True, sorted_ids[1:] != sorted_ids[:-1]]
            group_start = np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))
            rank[order] = np.arange(len(order)) - group_start + 1
            table["rank"] = rank
        else:
            table["score"] = np.round(score, 6)
        models[name] = table.sample(frac=1.0, random_state=seed + m_index).reset_index(drop=True)
    scenes = {"experts": experts.pop("_scene").to_numpy()}
    for name, table in models.items():
        scenes[name] = table.pop("_scene").to_numpy()
    return DemoSet(experts=experts, models=models, scenes=scenes)
