"""The paired comparison of two episode evaluations: per-video correctness -> deltas."""

from __future__ import annotations

import numpy as np
import pandas as pd

from evaluator.core.paired_stats import PairedDelta, change_labels, diff_order
from evaluator.decisions.paired_runs import (
    EPISODE_METRIC,
    Comparison,
    ComparisonRequest,
    aligned_videos,
    paired_comparison,
    paired_deltas,
    read_run_parquet,
)
from evaluator.errors import InputError

TEXT_METRIC = "text_exact_match"


def prepare_episode(req: ComparisonRequest) -> Comparison:
    """The paired comparison of the request's two episode evaluations."""
    tracking_uri, cand, base, tmp = req.tracking_uri, req.candidate, req.baseline, req.tmp
    boot, extra_metrics, alpha = req.bootstrap, req.extra_metrics, req.one_sided_alpha
    warnings = list(req.warnings)
    unknown = [m for m in extra_metrics if m not in (EPISODE_METRIC, TEXT_METRIC)]
    if unknown:
        raise InputError(
            f"episode comparison: no per-video values for {unknown}; episode evaluations are "
            f"compared on {EPISODE_METRIC} and, with transcriptions, {TEXT_METRIC} (use "
            f"promote=episode for the promotion rule)."
        )
    cols = ["video_id", "predicted_episode", "true_episode", "confidence", "episode_correct"]
    name = "episode_videos.parquet"
    ct = read_run_parquet(tracking_uri, cand, name, tmp, cols)
    bt = read_run_parquet(tracking_uri, base, name, tmp, cols)
    ct, bt, align, warnings = aligned_videos(ct, bt, cand, base, warnings, "videos")
    c_ok = ct["episode_correct"].astype(bool).to_numpy()
    b_ok = bt["episode_correct"].astype(bool).to_numpy()
    paired = paired_deltas(c_ok.astype(np.float64), b_ok.astype(np.float64), boot, alpha)
    names: tuple[str, ...] = (EPISODE_METRIC,)
    c_vals = c_ok.astype(np.float64)[:, None]
    b_vals = b_ok.astype(np.float64)[:, None]
    note = "episode evaluations have no matching-threshold sweep"
    text = _text_values(ct, bt, req, TEXT_METRIC in extra_metrics)
    if text is not None:
        c_text, b_text = text
        both = np.isfinite(c_text) & np.isfinite(b_text)
        paired = _stacked(paired, paired_deltas(c_text[both], b_text[both], boot, alpha))
        names = (EPISODE_METRIC, TEXT_METRIC)
        c_vals = np.column_stack([c_vals[:, 0], c_text])
        b_vals = np.column_stack([b_vals[:, 0], b_text])
        note += (
            f"; {TEXT_METRIC} is paired over the {int(both.sum())} compared videos with a "
            f"transcription (text_true) in both"
        )
    change = change_labels(c_ok, b_ok)
    video_diff = pd.DataFrame(
        {
            "video_id": pd.Series(align.video_ids, dtype="string"),
            "change": pd.Series(change, dtype="string"),
            "true_episode": ct["true_episode"].to_numpy(),
            "candidate_predicted_episode": ct["predicted_episode"].to_numpy(),
            "baseline_predicted_episode": bt["predicted_episode"].to_numpy(),
            "candidate_confidence": ct["confidence"].to_numpy(),
            "baseline_confidence": bt["confidence"].to_numpy(),
            "candidate_episode_correct": c_ok,
            "baseline_episode_correct": b_ok,
        }
    )
    if text is not None:
        # The columns evaluations with transcriptions write (episode_videos.parquet).
        if "text_true" in ct.columns:
            video_diff["text_true"] = ct["text_true"].astype("string").to_numpy()
        for side, frame in (("candidate", ct), ("baseline", bt)):
            if "text_read" in frame.columns:
                video_diff[f"{side}_text_read"] = frame["text_read"].astype("string").to_numpy()
        video_diff["candidate_text_exact_match"] = pd.array(_nullable(text[0]), dtype="boolean")
        video_diff["baseline_text_exact_match"] = pd.array(_nullable(text[1]), dtype="boolean")
    video_diff = video_diff.iloc[diff_order(change, align.video_ids)].reset_index(drop=True)
    return paired_comparison(
        req,
        align,
        warnings,
        (c_vals, b_vals),
        task="episode",
        names=names,
        paired=paired,
        video_diff=video_diff,
        sweep_note=note,
    )


def _text_values(
    ct: pd.DataFrame, bt: pd.DataFrame, req: ComparisonRequest, asked: bool
) -> tuple[np.ndarray, np.ndarray] | None:
    """Per compared video, each run's text_exact_match as 1.0 / 0.0 (NaN = no transcription).

    None when it is not asked for and not both runs have a transcribed video in common.

    Raises:
        InputError: asked for, and a run has no per-video text_exact_match or the two have
            no transcribed video in common.
    """
    runs = ((req.candidate, ct), (req.baseline, bt))
    missing = [run for run, frame in runs if TEXT_METRIC not in frame.columns]
    if missing:
        if not asked:
            return None
        run = missing[0]
        raise InputError(
            f"run {run.run_id} ({run.label}) has no per-video {TEXT_METRIC}: it was evaluated "
            f"without text_true / text_read; evaluate it again with the transcriptions."
        )
    values = [
        frame[TEXT_METRIC].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
        for frame in (ct, bt)
    ]
    if not (np.isfinite(values[0]) & np.isfinite(values[1])).any():
        if not asked:
            return None
        raise InputError(
            f"the candidate ({req.candidate.label}) and the baseline ({req.baseline.label}) "
            f"have no compared video with a transcription (text_true) in both, so "
            f"{TEXT_METRIC} cannot be compared."
        )
    return values[0], values[1]


def _nullable(values: np.ndarray) -> list[bool | None]:
    return [None if np.isnan(x) else bool(x) for x in values]


def _stacked(first: PairedDelta, second: PairedDelta) -> PairedDelta:
    """Two paired comparisons side by side, one column each; ``n`` stays the first's (all
    compared videos), the second having been paired over its own subset of them."""

    def both(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
        return None if a is None or b is None else np.concatenate([a, b])

    return PairedDelta(
        cand_mean=np.concatenate([first.cand_mean, second.cand_mean]),
        base_mean=np.concatenate([first.base_mean, second.base_mean]),
        delta=np.concatenate([first.delta, second.delta]),
        ci_low=np.concatenate([first.ci_low, second.ci_low]),
        ci_high=np.concatenate([first.ci_high, second.ci_high]),
        lower_bound=both(first.lower_bound, second.lower_bound),
        n_gained=np.concatenate([first.n_gained, second.n_gained]),
        n_lost=np.concatenate([first.n_lost, second.n_lost]),
        mcnemar_p=np.concatenate([first.mcnemar_p, second.mcnemar_p]),
        n=first.n,
        n_resamples=first.n_resamples,
        confidence=first.confidence,
        one_sided_alpha=first.one_sided_alpha,
    )
