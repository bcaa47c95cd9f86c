"""Plain-loop references of the episode text and consensus metrics (docs/metrics.md).

Nothing here uses numpy arrays or rapidfuzz: texts are normalised character by character and
the edit distance is the textbook dynamic programme, so the evaluator's numbers are checked
against an independent reading of the contract.
"""

from __future__ import annotations

import math
import unicodedata


def ref_normalize(text: str | None) -> str:
    """NFKC, then every run of whitespace (str.isspace) to one space, then strip."""
    if text is None:
        return ""
    out: list[str] = []
    in_space = False
    for ch in unicodedata.normalize("NFKC", text):
        if ch.isspace():
            in_space = True
            continue
        if in_space and out:
            out.append(" ")
        in_space = False
        out.append(ch)
    return "".join(out)


def ref_levenshtein(a: str, b: str) -> int:
    """Edit distance over code points (insert, delete, substitute: each 1)."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _share(num: float, den: float) -> float:
    return num / den if den else math.nan


def ref_text_metrics(rows: list[dict]) -> dict[str, float]:
    """text_cer, text_exact_match, n_text_videos, episode_errors_with_text_error.

    Each row: text_read, text_true (None = not transcribed), predicted_episode, true_episode.
    """
    errors = characters = exact = n = wrong = wrong_misread = 0
    for r in rows:
        if r["text_true"] is None:
            continue
        read, truth = ref_normalize(r["text_read"]), ref_normalize(r["text_true"])
        n += 1
        errors += ref_levenshtein(read, truth)
        characters += len(truth)
        exact += read == truth
        if r["predicted_episode"] != r["true_episode"]:
            wrong += 1
            wrong_misread += read != truth
    return {
        "text_cer": _share(errors, characters),
        "text_exact_match": _share(exact, n),
        "n_text_videos": float(n),
        "episode_errors_with_text_error": _share(wrong_misread, wrong),
    }


def ref_consensus_metrics(rows: list[dict], threshold: float) -> dict[str, float]:
    """The second reading and the consensus policy; text_episode None = read none.

    Each row: metadata_episode, predicted_episode, true_episode, confidence, text_episode.
    """
    n = len(rows)
    text_right = agree = agree_right = decided = decided_right = missed = 0
    for r in rows:
        meta, pred, true = r["metadata_episode"], r["predicted_episode"], r["true_episode"]
        text = r["text_episode"]
        text_right += text is not None and text == true
        agrees = text is not None and text == pred
        agree += agrees
        agree_right += agrees and pred == true
        if agrees and r["confidence"] >= threshold:
            decided += 1
            decided_right += (pred != meta) == (true != meta)
            missed += pred == meta and meta != true
    return {
        "text_episode_accuracy": _share(text_right, n),
        "readings_agree": _share(agree, n),
        "accuracy_when_readings_agree": _share(agree_right, agree),
        "consensus_coverage": _share(decided, n),
        "consensus_auto_accuracy": _share(decided_right, decided),
        "consensus_missed_mismatches": float(missed),
    }


def ref_consensus_curve(rows: list[dict]) -> list[tuple[float, float, float]]:
    """(threshold, coverage, auto_accuracy) at every distinct confidence of the agreeing videos,
    highest first: the consensus policy evaluated from scratch at each."""
    thresholds = sorted(
        {
            r["confidence"]
            for r in rows
            if r["text_episode"] is not None and r["text_episode"] == r["predicted_episode"]
        },
        reverse=True,
    )
    out = []
    for t in thresholds:
        m = ref_consensus_metrics(rows, t)
        out.append((t, m["consensus_coverage"], m["consensus_auto_accuracy"]))
    return out
