"""The text side of ``task=episode``: the text columns -> core numbers -> tables, plots, report.

With ``text_true`` (and ``text_read``) the evaluation adds the text-extraction metrics; with
``text_episode`` the second reading and the consensus policy (`evaluator.core.episode_text`).
This module turns that result into what `evaluator.tasks.episode` writes and records:

- metrics (``text_cer``, ``text_exact_match``, ``readings_agree``, ``consensus_coverage``, ...);
- per-video columns of ``episode_videos.parquet`` and per-group columns of
  ``episode_groups.parquet``;
- ``episode_text.parquet``: the misread videos, worst first, with their case (slice values);
- ``plots/text_cer_per_case.png`` (with ``data.slices``) and
  ``plots/consensus_risk_coverage.png``;
- the text sections of ``report.html``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluator.core.episode import EpisodeResult
from evaluator.core.episode_inputs import episode_videos
from evaluator.core.episode_text import (
    EpisodeTextResult,
    evaluate_episode_text,
    grouped_text_metrics,
    worst_misreads_order,
)
from evaluator.io.episode import EpisodeTable
from evaluator.io.outputs import Writer

TEXT_TABLE = "episode_text.parquet"
TEXT_CER_PLOT = "plots/text_cer_per_case.png"
CONSENSUS_PLOT = "plots/consensus_risk_coverage.png"


def evaluate_table_text(
    table: EpisodeTable,
    *,
    threshold: float,
    n_resamples: int,
    ci_level: float,
    seed: int,
) -> EpisodeTextResult | None:
    """The text metrics of a validated table, or None when it has neither ``text_true`` nor
    ``text_episode`` (a lone ``text_read`` is only carried into the per-video table)."""
    t = table.texts
    if t.text_true is None and t.text_episode is None:
        return None
    return evaluate_episode_text(
        table.metadata_episode,
        table.predicted_episode,
        table.true_episode,
        table.confidence,
        text_read=t.text_read,
        text_true=t.text_true,
        text_episode=t.text_episode,
        threshold=threshold,
        n_resamples=n_resamples,
        ci_level=ci_level,
        seed=seed,
    )


def video_text_columns(table: EpisodeTable, text: EpisodeTextResult | None) -> pd.DataFrame:
    """Per video (in the table's video-id order): the text columns present and their scores.

    Columns: ``video_id``; ``text_read``, ``text_true``, ``text_episode`` (as given, when
    present); with ``text_true``: ``text_edit_distance`` and ``text_exact_match`` (null for a
    video without a transcription); with ``text_episode``: ``readings_agree`` and
    ``consensus_decided`` (the consensus policy decides it alone at the threshold).
    """
    t = table.texts
    frame = pd.DataFrame({"video_id": pd.Series(table.video_id, dtype="string")})
    for name, values in (("text_read", t.text_read), ("text_true", t.text_true)):
        if values is not None:
            frame[name] = pd.Series(values, dtype="string")
    if t.text_episode is not None:
        frame["text_episode"] = pd.array(
            [None if np.isnan(x) else int(x) for x in t.text_episode], dtype="Int64"
        )
    if text is not None and text.reads is not None:
        r = text.reads
        pairs = list(zip(r.has_truth.tolist(), r.distance.tolist(), strict=True))
        frame["text_edit_distance"] = pd.array([d if h else None for h, d in pairs], "Int64")
        frame["text_exact_match"] = pd.array([d == 0 if h else None for h, d in pairs], "boolean")
    if text is not None and text.readings is not None and text.consensus is not None:
        frame["readings_agree"] = text.readings.agree
        frame["consensus_decided"] = text.consensus.decided
    return frame


def with_text_columns(
    videos: pd.DataFrame, table: EpisodeTable, text: EpisodeTextResult | None
) -> pd.DataFrame:
    """``episode_videos.parquet`` with the text columns appended (unchanged without any)."""
    extra = video_text_columns(table, text)
    if extra.shape[1] == 1:
        return videos
    return videos.merge(extra, on="video_id", how="left", validate="one_to_one")


def group_text_columns(
    groups: pd.DataFrame | None,
    table: EpisodeTable,
    text: EpisodeTextResult | None,
    threshold: float,
) -> pd.DataFrame | None:
    """``episode_groups.parquet`` with the text / consensus columns per group appended."""
    if groups is None or text is None or table.groups is None:
        return groups
    _, codes = np.unique(table.groups, return_inverse=True)
    v = episode_videos(
        table.metadata_episode, table.predicted_episode, table.true_episode, table.confidence
    )
    columns = grouped_text_metrics(
        v, text.reads, text.readings, codes.reshape(-1), len(groups), threshold=threshold
    )
    return groups.assign(**columns)


def misreads_frame(
    table: EpisodeTable,
    result: EpisodeResult,
    text: EpisodeTextResult | None,
    cases: pd.DataFrame | None,
) -> pd.DataFrame | None:
    """``episode_text.parquet``: every misread video (normalised read != normalised truth),
    worst first (`evaluator.core.episode_text.worst_misreads_order`).

    Columns: ``rank`` (1 = worst), ``video_id``, the case columns (each slice column's value,
    with ``data.slices``; the group column), ``text_true``, ``text_read`` (as given),
    ``text_true_normalized``, ``text_read_normalized``, ``edit_distance``, ``truth_length``,
    ``cer`` (edit_distance / truth_length; null for an empty truth), ``predicted_episode``,
    ``true_episode``, ``episode_correct``. None without ``text_true``.
    """
    if text is None or text.reads is None:
        return None
    r = text.reads
    rows = worst_misreads_order(r, table.video_id)
    t = table.texts
    frame = pd.DataFrame(
        {
            "rank": np.arange(1, rows.size + 1, dtype=np.int64),
            "video_id": pd.Series(table.video_id[rows], dtype="string"),
        }
    )
    if table.group_column is not None and table.groups is not None:
        frame[table.group_column] = table.groups[rows]
    if cases is not None:
        case = cases.set_index(cases["video_id"].astype(str)).drop(columns="video_id")
        picked = case.reindex(frame["video_id"].astype(str).to_numpy())
        for col in picked.columns:
            frame[col] = picked[col].to_numpy()
    as_given = [None if a is None else a[rows] for a in (t.text_true, t.text_read)]
    frame = frame.assign(
        text_true=pd.Series(as_given[0], dtype="string"),
        text_read=pd.Series(as_given[1], dtype="string"),
        text_true_normalized=pd.Series(r.truth[rows], dtype="string"),
        text_read_normalized=pd.Series(r.read[rows], dtype="string"),
        edit_distance=r.distance[rows],
        truth_length=r.truth_length[rows],
        cer=r.video_cer[rows],
        predicted_episode=table.predicted_episode[rows],
        true_episode=table.true_episode[rows],
        episode_correct=result.episode_correct[rows],
    )
    return frame


def text_plot_writers(
    text: EpisodeTextResult | None,
    result: EpisodeResult,
    slices_table: pd.DataFrame | None,
    *,
    threshold: float,
    title: str,
) -> dict[str, Writer]:
    """The text plots: text_cer per case (needs ``text_true`` and ``data.slices``) and the
    consensus vs single-model risk-coverage (needs ``text_episode``)."""
    if text is None:
        return {}
    writers: dict[str, Writer] = {}
    m = text.metrics
    if text.reads is not None and slices_table is not None:
        cases = slices_table[slices_table["n_text_videos"] > 0].reset_index(drop=True)
        # The plot's labels count the videos behind each point: the transcribed ones.
        cases = cases.assign(n_videos=cases["n_text_videos"])
        if len(cases):
            reference = (m["text_cer"], m["text_cer_ci_low"], m["text_cer_ci_high"])

            def write_cer(path: Path) -> None:
                from evaluator.report.slices import plot_forest

                plot_forest(
                    cases,
                    "text_cer",
                    "text_cer_ci_low",
                    "text_cer_ci_high",
                    path,
                    title=f"{title}: text_cer per case",
                    xlabel="text_cer (character error rate; bars: bootstrap interval over the "
                    "case's transcribed videos)",
                    reference=reference,
                )

            writers[TEXT_CER_PLOT] = write_cer
    if text.curve is not None and text.consensus is not None:
        curve = text.curve

        def write_consensus(path: Path) -> None:
            from evaluator.report.episode_text_plots import plot_consensus_risk_coverage

            plot_consensus_risk_coverage(
                result.curve,
                curve,
                path,
                threshold=threshold,
                single_at=(result.metrics["coverage"], result.metrics["auto_accuracy"]),
                consensus_at=(m["consensus_coverage"], m["consensus_auto_accuracy"]),
                title=title,
            )

        writers[CONSENSUS_PLOT] = write_consensus
    return writers


def text_summary_lines(summary: dict[str, Any]) -> str | None:
    """The printed lines about the text side of an evaluation (None without text columns)."""
    m = summary.get("metrics", {})

    def num(name: str) -> str:
        value = m.get(name)
        return "-" if value is None or not math.isfinite(value) else f"{value:.4f}"

    lines = []
    if "text_cer" in m:
        lines.append(
            f"  text ({int(m['n_text_videos'])} transcribed videos): text_cer {num('text_cer')} "
            f"[{num('text_cer_ci_low')}, {num('text_cer_ci_high')}]  text_exact_match "
            f"{num('text_exact_match')} [{num('text_exact_match_ci_low')}, "
            f"{num('text_exact_match_ci_high')}]  episode errors with a text error "
            f"{num('episode_errors_with_text_error')}"
        )
    if "consensus_coverage" in m:
        lines.append(
            f"  second reading: text_episode_accuracy {num('text_episode_accuracy')}  "
            f"readings_agree {num('readings_agree')}  accuracy_when_readings_agree "
            f"{num('accuracy_when_readings_agree')}"
        )
        lines.append(
            f"  consensus: coverage {num('consensus_coverage')}  auto_accuracy "
            f"{num('consensus_auto_accuracy')}  missed mismatches "
            f"{int(m['consensus_missed_mismatches'])} (single model: coverage "
            f"{num('coverage')}  auto_accuracy {num('auto_accuracy')})"
        )
    return "\n".join(lines) or None
