"""Result tables of the episode task: the core result as pandas frames and plain dicts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from evaluator.core.episode import EpisodeResult, GroupBreakdown, RiskCoverageCurve
from evaluator.io.episode import EpisodeTable

CONFUSION_LABELS = ("no_mismatch", "mismatch")


def episode_video_table(result: EpisodeResult, table: EpisodeTable) -> pd.DataFrame:
    """One row per video: the inputs, the flag, the truth and the decision at the threshold.

    Columns: ``video_id``, ``metadata_episode``, ``predicted_episode``, ``true_episode``,
    ``confidence``, ``flagged`` (predicted != metadata), ``true_mismatch`` (true != metadata),
    ``decision`` (``auto_accept`` / ``auto_flag`` / ``human_review``), ``decision_correct``
    (flagged == true_mismatch, filled for every video so reviewers see what the model would
    have said), ``episode_correct`` (predicted == true), then ``series_id`` / ``season`` (and
    the group column) when present. Sorted by video id.
    """
    frame = pd.DataFrame(
        {
            "video_id": pd.Series(table.video_id, dtype="string"),
            "metadata_episode": table.metadata_episode,
            "predicted_episode": table.predicted_episode,
            "true_episode": table.true_episode,
            "confidence": table.confidence,
            "flagged": table.predicted_episode != table.metadata_episode,
            "true_mismatch": table.true_episode != table.metadata_episode,
            "decision": pd.Series(result.decisions, dtype="string"),
            "decision_correct": result.decision_correct,
            "episode_correct": result.episode_correct,
        }
    )
    for name, values in table.carried.items():
        frame[name] = values.to_numpy()
    return frame.sort_values("video_id", kind="stable").reset_index(drop=True)


def sweep_frame(curve: RiskCoverageCurve) -> pd.DataFrame:
    """The risk-coverage curve, one row per distinct confidence used as the threshold."""
    return pd.DataFrame(
        {
            "threshold": curve.threshold,
            "coverage": curve.coverage,
            "auto_accuracy": curve.auto_accuracy,
            "n_auto": curve.n_auto,
            "n_errors": curve.n_errors,
            "n_missed_mismatches_auto_accepted": curve.n_missed_mismatches_auto_accepted,
            "n_false_flags_auto": curve.n_false_flags_auto,
        }
    )


def group_frame(groups: GroupBreakdown, column: str) -> pd.DataFrame:
    """The per-group breakdown with the group column under its own name (e.g. series_id)."""
    data = groups.columns()
    labels = data.pop("group")
    return pd.DataFrame({column: labels, **data})


def confusion_dict(confusion: np.ndarray) -> dict[str, Any]:
    """confusion_matrix.json: ``[[TN, FP], [FN, TP]]``, rows = truth, columns = flag."""
    (tn, fp), (fn, tp) = confusion.tolist()
    return {
        "labels": list(CONFUSION_LABELS),
        "rows": "truth (true_episode != metadata_episode)",
        "columns": "model flag (predicted_episode != metadata_episode)",
        "matrix": [[tn, fp], [fn, tp]],
        "tn": tn,
        "fp": fp,
        "fn": fn,
        "tp": tp,
    }
