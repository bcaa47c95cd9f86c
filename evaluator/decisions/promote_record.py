"""What a CI job reads from ``video-eval-promote``: exit codes, ``decision.json``, one sentence.

The exit code says what was decided (`EXIT_PROMOTE`, `EXIT_REJECT`); input / config errors
exit 2, MLflow errors 3, a bug 4 (`evaluator.cli`). ``decision.json`` holds every number behind
the decision, with the same keys whether or not there was a champion (null where a value does
not apply); the same file is an artifact of the evidence run. `history_sentence` is the line
appended to the registered model version's description, so the registry page says why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from evaluator import __version__
from evaluator.core.promotion_decision import PromotionDecision
from evaluator.decisions.paired_runs import Comparison
from evaluator.tracking.mlflow_run import set_tags
from evaluator.tracking.registry import EvaluationRun, append_version_description, set_alias

EXIT_PROMOTE = 0
EXIT_REJECT = 1
DECISION_FILE = "decision.json"
SCHEMA = "video-eval-promote/decision/1"


def exit_code(decision: PromotionDecision) -> int:
    """`EXIT_PROMOTE` (0) for a promote decision (applied or dry run), `EXIT_REJECT` (1)."""
    return EXIT_PROMOTE if decision.promote else EXIT_REJECT


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def public_uri(uri: str) -> str:
    """The tracking URI without any user:password part (it goes into a shared file).

    Example:
        >>> public_uri("https://bot:s3cret@mlflow.example.com/")
        'https://mlflow.example.com/'
    """
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _primary(
    metric: str,
    decision: PromotionDecision,
    comparison: Comparison | None,
    candidate: EvaluationRun,
    min_delta: float,
) -> dict[str, Any]:
    check = next((c for c in decision.checks if c.kind == "primary"), None)
    out: dict[str, Any] = {
        "name": metric,
        "candidate": _number(candidate.metrics.get(metric, math.nan)),
        "champion": None,
        "delta": None,
        "ci_low": None,
        "ci_high": None,
        "confidence": None,
        "lower_bound": None,
        "one_sided_confidence": None,
        "min_delta": min_delta,
        "p_value": None,
        "p_value_test": None,
        "passed": None if check is None else check.passed,
    }
    if comparison is None:
        return out
    p = comparison.paired
    i = comparison.index(metric)
    alpha = comparison.one_sided_alpha
    out.update(
        candidate=float(p.cand_mean[i]),
        champion=float(p.base_mean[i]),
        delta=float(p.delta[i]),
        ci_low=float(p.ci_low[i]),
        ci_high=float(p.ci_high[i]),
        confidence=float(p.confidence),
        lower_bound=None if p.lower_bound is None else float(p.lower_bound[i]),
        one_sided_confidence=None if alpha is None else 1.0 - float(alpha),
        p_value=_number(float(p.mcnemar_p[i])),
        # McNemar's exact test needs 0/1 per video (recall_at_k, episode_accuracy).
        p_value_test="mcnemar_exact" if math.isfinite(p.mcnemar_p[i]) else None,
    )
    return out


def decision_document(
    *,
    name: str,
    version: str,
    candidate: EvaluationRun,
    champion_version: str | None,
    champion_alias: str,
    previous_alias: str,
    comparison: Comparison | None,
    decision: PromotionDecision,
    rule: Mapping[str, Any],
    run_id: str,
    experiment_id: str,
    tracking_uri: str,
    dry_run: bool,
    applied: bool,
    aliases_moved: Mapping[str, str],
    sentence: str,
) -> dict[str, Any]:
    """The content of ``decision.json`` (see docs/ci-gate.md for every key).

    Args:
        name / version: the candidate model version.
        candidate: its evaluation run.
        champion_version: the champion's version before the decision, or None (no champion).
        champion_alias / previous_alias: the aliases the decision moves.
        comparison: the paired comparison with the champion, or None without a champion.
        decision: the decision of `evaluator.core.promotion_decision.decide_promotion`.
        rule: the rule's settings (metric, alpha, min_delta, guardrails, floors).
        run_id / experiment_id / tracking_uri: the evidence run.
        dry_run: whether ``promote.apply`` was false.
        applied: whether the aliases were moved.
        aliases_moved: alias -> version it now points to (empty when nothing moved).
        sentence: the one-line statement of `history_sentence`.
    """
    deltas = {} if comparison is None else {m: comparison.index(m) for m in rule["guardrails"]}
    guardrails = []
    for c in decision.checks:
        if c.kind != "guardrail":
            continue
        row: dict[str, Any] = {
            "metric": c.metric,
            "delta": c.value,
            "max_drop": -c.limit,
            "passed": c.passed,
        }
        if comparison is not None and c.metric in deltas:
            row["ci_low"] = float(comparison.paired.ci_low[deltas[c.metric]])
            row["ci_high"] = float(comparison.paired.ci_high[deltas[c.metric]])
        guardrails.append(row)
    floors = [
        {"metric": c.metric, "value": c.value, "floor": c.limit, "passed": c.passed}
        for c in decision.checks
        if c.kind == "floor"
    ]
    champion = None
    if champion_version is not None:
        champion = {
            "version": champion_version,
            "alias": champion_alias,
            "run_id": None if comparison is None else comparison.baseline.run_id,
        }
    return {
        "schema": SCHEMA,
        "decision": "promote" if decision.promote else "reject",
        "exit_code": exit_code(decision),
        "reason": decision.reason,
        "sentence": sentence,
        "model": name,
        "task": candidate.task,
        "candidate": {
            "version": version,
            "run_id": candidate.run_id,
            "dataset_digest": candidate.digest,
        },
        "champion": champion,
        "rule": {
            **dict(rule),
            "champion_alias": champion_alias,
            "previous_alias": previous_alias,
        },
        "primary_metric": _primary(
            str(rule["metric"]), decision, comparison, candidate, float(rule["min_delta"])
        ),
        "guardrails": guardrails,
        "floors": floors,
        "n_videos_compared": None if comparison is None else comparison.n_videos,
        "evidence_run": {
            "run_id": run_id,
            "experiment_id": experiment_id,
            "tracking_uri": public_uri(tracking_uri),
        },
        "dry_run": dry_run,
        "applied": applied,
        "aliases_moved": dict(aliases_moved),
        "evaluator_version": __version__,
        "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def history_sentence(
    *,
    version: str,
    champion_version: str | None,
    decision: PromotionDecision,
    dry_run: bool,
    run_id: str,
) -> str:
    """One sentence with the decision and its numbers, for the model version's description.

    Example:
        >>> from evaluator.core.promotion_decision import decide_promotion
        >>> d = decide_promotion("recall_at_10", has_champion=True, delta=0.11, lower_bound=0.05)
        >>> history_sentence(version="2", champion_version="1", decision=d, dry_run=True,
        ...                  run_id="abc")[11:]
        'video-eval-promote: PROMOTE v2 over champion v1 (dry run, no alias moved): recall_at_10 +0.110 (95% lower bound +0.050 > 0.000); evidence run abc.'
    """  # noqa: E501
    day = datetime.now(UTC).date().isoformat()
    word = "PROMOTE" if decision.promote else "REJECT"
    against = f"over champion v{champion_version}" if champion_version else "with no champion"
    if dry_run:
        mode = "dry run, no alias moved"
    else:
        mode = "applied" if decision.promote else "rejected, no alias moved"
    return (
        f"{day} video-eval-promote: {word} v{version} {against} ({mode}): {decision.reason}; "
        f"evidence run {run_id}."
    )


def move_aliases(
    tracking_uri: str,
    name: str,
    version: str,
    champion: str | None,
    aliases: tuple[str, str],
    run_id: str,
) -> dict[str, str]:
    """Apply a promote decision: the champion alias to ``version``, the old champion to the
    previous alias; the evidence run gets ``promotion.applied=true`` and the old champion's
    description a line saying it was replaced.

    Args:
        tracking_uri / name / version: the store, the model, the promoted version.
        champion: the champion's version before the decision, or None.
        aliases: (champion alias, previous-champion alias).
        run_id: the evidence run.

    Returns:
        Alias -> the version it now points to.

    Raises:
        TrackingError: MLflow failed.
    """
    champion_alias, previous_alias = aliases
    moved: dict[str, str] = {}
    if champion is not None:
        set_alias(tracking_uri, name, previous_alias, champion)
        moved[previous_alias] = champion
    set_alias(tracking_uri, name, champion_alias, version)
    moved[champion_alias] = version
    set_tags(tracking_uri, run_id, {"promotion.applied": "true"})
    if champion is not None:
        day = datetime.now(UTC).date().isoformat()
        append_version_description(
            tracking_uri,
            name,
            champion,
            f"{day} video-eval-promote: replaced as {champion_alias!r} by v{version} (now "
            f"{previous_alias!r}); evidence run {run_id}.",
        )
    return moved
