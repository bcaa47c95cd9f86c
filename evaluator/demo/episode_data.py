"""Synthetic episode-verification data: a catalog with wrong metadata and two reader models.

Videos belong to series (with seasons of up to 24 episodes). About 8 % of the videos carry a
wrong episode number in the metadata (off by one, a swap within the season, or a stray
number). A model reads each video correctly with a per-video probability ``p`` that depends on
how hard the video is and how good the model is; it reports a confidence close to ``p``
(calibrated-ish). When it misreads a video whose metadata is wrong, it often reads the same
wrong burned-in number, which is the costly case: a missed mismatch.

Each video also has a case (where the number is burned in, the font, the language), the human
transcription of its burned-in text (``text_true``; about 15 % not transcribed), and per model
the text it read (``text_read``: harder cases are misread more often; full-width digits and odd
spacing that normalise away) and a second, text-based reading of the episode number
(``text_episode``; null when it read none). These are drawn from a generator of their own, so
the columns of the episode metrics are the same as without them.
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
    cases: pd.DataFrame


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def make_episode_demo(n_videos: int = 600, seed: int = 0) -> EpisodeDemo:
    """Generate an episode evaluation set and the tables of two demo models.

    Args:
        n_videos: number of videos.
        seed: random seed (the same seed gives the same tables).

    Returns:
        An :class:`EpisodeDemo`. ``truth`` has video_id, series_id, season, metadata_episode,
        true_episode, text_true; each model table adds predicted_episode, confidence,
        text_read and text_episode, in a shuffled row order of its own. ``cases`` (the slice
        metadata, ``data.slices``) has video_id, burn_in, font, language.
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

    ids = [f"ep{i:06d}" for i in range(n_videos)]
    # The text side has a generator of its own: the draws above and below stay as they were.
    text_rng = np.random.default_rng((seed, 24))
    cases = _cases(ids, text_rng)
    truth = pd.DataFrame(
        {
            "video_id": ids,
            "series_id": [f"series{s:02d}" for s in series],
            "season": season,
            "metadata_episode": meta,
            "true_episode": true,
        }
    )
    transcribed = text_rng.random(n_videos) >= NOT_TRANSCRIBED
    burned_in = _burned_in(true, cases["language"].to_numpy())
    truth["text_true"] = pd.Series(
        [str(t) if ok else None for t, ok in zip(burned_in, transcribed, strict=True)],
        dtype=object,
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
        text_read, text_episode = _text_readings(
            text_rng, true, meta, wrong, cases, TEXT_SKILL[name]
        )
        table = truth.assign(
            predicted_episode=predicted,
            confidence=np.round(confidence, 4),
            text_read=pd.Series(text_read, dtype=object),
            text_episode=text_episode,
        ).sample(frac=1.0, random_state=seed + index)
        models[name] = table.reset_index(drop=True)
    return EpisodeDemo(truth=truth, models=models, cases=cases)


# ----------------------------------------------------------------------------- the text side

# Model name -> how much better than the baseline it reads text (lowers every error rate).
TEXT_SKILL = {"episode_baseline": 1.0, "episode_candidate": 0.55}
NOT_TRANSCRIBED = 0.15
BURN_IN = {"corner": 0.10, "lower_third": 0.06, "title_card": 0.03}
FONT = {"sans": 0.04, "serif": 0.08, "handwritten": 0.22}
LANGUAGE = ("ko", "en", "ja")
# Characters a reader confuses (what it reads instead).
CONFUSIONS = {"1": "7", "7": "1", "0": "8", "8": "3", "3": "8", "5": "6", "6": "5", "화": "와"}
CONFUSIONS |= {"話": "活", "E": "F", "p": "o", "i": "l", "s": "5", "제": "재", "第": "弟"}
# Whitespace a reader may emit instead of one space (all normalise to one space).
ODD_SPACES = ("\t", "\u00a0", "\u3000", "  ")


def _cases(ids: list[str], rng: np.random.Generator) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame(
        {
            "video_id": ids,
            "burn_in": rng.choice(list(BURN_IN), n, p=[0.5, 0.3, 0.2]),
            "font": rng.choice(list(FONT), n, p=[0.55, 0.3, 0.15]),
            "language": rng.choice(list(LANGUAGE), n, p=[0.6, 0.25, 0.15]),
        }
    )


def _burned_in(episode: np.ndarray, language: np.ndarray) -> np.ndarray:
    """The burned-in text of each video, in its language."""
    forms = {"ko": "제{}화", "en": "Episode {}", "ja": "第{}話"}
    return np.array([forms[lang].format(e) for e, lang in zip(episode, language, strict=True)])


def _misread(text: str, rng: np.random.Generator) -> str:
    """One or two character errors: a confusion, a dropped or a doubled character."""
    chars = list(text)
    for _ in range(1 + int(rng.random() < 0.3)):
        i = int(rng.integers(0, len(chars)))
        kind = rng.random()
        if kind < 0.6:
            chars[i] = CONFUSIONS.get(chars[i], "?")
        elif kind < 0.8 and len(chars) > 1:
            del chars[i]
        else:
            chars.insert(i, chars[i])
    return "".join(chars)


def _dressed(text: str, rng: np.random.Generator) -> str:
    """The same text as a reader may emit it: full-width digits, odd spaces (NFKC undoes it)."""
    if rng.random() < 0.2:
        text = text.translate({ord(d): 0xFF10 + int(d) for d in "0123456789"})
    if rng.random() < 0.2:
        text = text.replace(" ", str(rng.choice(ODD_SPACES)))
    return f" {text}\t" if rng.random() < 0.1 else text


def _text_readings(
    rng: np.random.Generator,
    true: np.ndarray,
    meta: np.ndarray,
    wrong: np.ndarray,
    cases: pd.DataFrame,
    skill: float,
) -> tuple[list[str], np.ndarray]:
    """A model's text_read and the text-based episode reading (NaN = read none)."""
    n = true.shape[0]
    error = skill * (cases["burn_in"].map(BURN_IN).to_numpy() + cases["font"].map(FONT).to_numpy())
    truth = _burned_in(true, cases["language"].to_numpy())
    read = []
    for text, p in zip(truth, error, strict=True):
        u = rng.random()
        if u < p / 4:
            read.append("")  # read nothing
        elif u < p:
            read.append(_dressed(_misread(str(text), rng), rng))
        else:
            read.append(_dressed(str(text), rng))
    # The second reading: right most of the time, sometimes the (wrong) metadata, sometimes none.
    u = rng.random(n)
    text_episode = np.where(u < 1.5 * error, np.where(wrong, meta, true + 1), true).astype(float)
    text_episode[u > 1 - 0.04 * skill] = np.nan
    return read, text_episode
