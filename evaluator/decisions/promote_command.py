"""``video-eval-promote``: gate a registered model version's promotion on paired evidence.

The candidate is version ``model.version`` of ``model.name``; the champion is the version the
``champion`` alias points to. Both resolve to their latest finished evaluation runs (run tags
``model.name`` / ``model.version``), which are compared exactly as ``video-eval-compare`` does
(`evaluator.decisions.compare_command`), and the rule of
`evaluator.core.promotion_decision.decide_promotion` is applied to the paired one-sided lower
bound. Without a champion the candidate's own metrics are checked against ``promote.floors``.
The decision is always recorded (on the comparison run and as tags of the candidate version,
`promote_record`); aliases move only with ``promote.apply=true``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from evaluator import __version__
from evaluator.core.promotion_decision import PromotionDecision, decide_promotion
from evaluator.decisions.compare_command import format_comparison, prepare_comparison
from evaluator.decisions.compare_record import model_ref, record_comparison
from evaluator.decisions.paired_runs import Comparison, bootstrap_settings, required_value
from evaluator.decisions.promote_config import PromotionRule, promotion_rule
from evaluator.decisions.promote_record import (
    DECISION_FILE,
    decision_document,
    exit_code,
    history_sentence,
    move_aliases,
)
from evaluator.errors import InputError
from evaluator.io.outputs import write_all, write_json, write_text
from evaluator.tracking.mlflow_run import log_artifact, record_run
from evaluator.tracking.reachability import ui_hint
from evaluator.tracking.records import RecordedRun, RunRecord, artifact_list
from evaluator.tracking.registry import (
    EvaluationRun,
    alias_version,
    append_version_description,
    experiment_name,
    model_aliases,
    model_version,
    resolve_evaluation,
    set_version_tags,
)


@dataclass(frozen=True)
class PromoteOutcome:
    """What ``video-eval-promote`` decided and recorded.

    Attributes:
        name / version: the candidate model version.
        champion_version: the champion's version before the decision, or None.
        candidate: the candidate's evaluation run.
        comparison: the paired comparison with the champion, or None without a champion.
        decision: promote or reject, with the reason.
        applied: whether the aliases were moved.
        summary: summary.json of the evidence run.
        output_dir / files: the local result files.
        run: the evidence run (the comparison run, or a promotion run without a champion).
        document: the content of ``decision.json`` (in ``output_dir`` and on the run).
    """

    name: str
    version: str
    champion_version: str | None
    candidate: EvaluationRun
    comparison: Comparison | None
    decision: PromotionDecision
    applied: bool
    summary: dict[str, Any]
    output_dir: Path
    files: list[Path]
    run: RecordedRun
    document: dict[str, Any]

    @property
    def decision_word(self) -> str:
        """``promote`` or ``reject``."""
        return "promote" if self.decision.promote else "reject"

    @property
    def exit_code(self) -> int:
        """What ``video-eval-promote`` exits with: 0 promote (applied or dry run), 1 reject."""
        return exit_code(self.decision)


def _decide(
    rule: PromotionRule,
    comparison: Comparison | None,
    candidate: EvaluationRun,
) -> PromotionDecision:
    try:
        if comparison is None:
            missing = [m for m in rule.floors if m not in candidate.metrics]
            if missing:
                raise InputError(
                    f"promote.floors names {missing}, which the candidate's evaluation run "
                    f"{candidate.run_id} did not log (it has {sorted(candidate.metrics)[:12]}"
                    f"{', ...' if len(candidate.metrics) > 12 else ''})."
                )
            return decide_promotion(
                rule.metric,
                has_champion=False,
                alpha=rule.alpha,
                min_delta=rule.min_delta,
                floors=rule.floors,
                candidate_values={m: candidate.metrics[m] for m in rule.floors},
            )
        p = comparison.paired
        assert p.lower_bound is not None  # prepared with one_sided_alpha
        i = comparison.index(rule.metric)
        return decide_promotion(
            rule.metric,
            has_champion=True,
            delta=float(p.delta[i]),
            lower_bound=float(p.lower_bound[i]),
            alpha=rule.alpha,
            min_delta=rule.min_delta,
            guardrails=rule.guardrails,
            guardrail_deltas={g: float(p.delta[comparison.index(g)]) for g in rule.guardrails},
            slices=None
            if comparison.slices is None or rule.block_on_regression is False
            else comparison.slices.gate,
        )
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"config: promote: {exc}.") from None


def _promotion_tags(
    rule: PromotionRule,
    decision: PromotionDecision,
    name: str,
    version: str,
    champion: str | None,
) -> dict[str, str]:
    return {
        "promotion.decision": "promote" if decision.promote else "reject",
        "promotion.reason": decision.reason,
        "promotion.model": name,
        "promotion.candidate_version": version,
        "promotion.champion_version": champion or "none",
        "promotion.metric": rule.metric,
        "promotion.mode": "apply" if rule.apply else "dry_run",
    }


def _promotion_params(rule: PromotionRule) -> dict[str, str]:
    params = {
        "promote.metric": rule.metric,
        "promote.alpha": str(rule.alpha),
        "promote.min_delta": str(rule.min_delta),
        "promote.apply": str(rule.apply).lower(),
        "promote.champion_alias": rule.champion_alias,
    }
    params.update({f"promote.guardrails.{k}": str(v) for k, v in rule.guardrails.items()})
    params.update({f"promote.floors.{k}": str(v) for k, v in rule.floors.items()})
    params.update(rule.slice_params)
    return params


def _decision_summary(
    rule: PromotionRule, decision: PromotionDecision, champion: str | None
) -> dict[str, Any]:
    return {
        "promotion": {
            "decision": "promote" if decision.promote else "reject",
            "reason": decision.reason,
            "champion_version": champion,
            "rule": rule.settings(),
            "checks": [
                {
                    "kind": c.kind,
                    "metric": c.metric,
                    "value": c.value,
                    "limit": c.limit,
                    "passed": c.passed,
                    "detail": c.detail,
                }
                for c in decision.checks
            ],
            "apply": rule.apply,
        }
    }


def _decision_metrics(
    rule: PromotionRule, decision: PromotionDecision, comparison: Comparison | None
) -> dict[str, float]:
    out = {"promotion_decision": 1.0 if decision.promote else 0.0}
    if comparison is not None and comparison.paired.lower_bound is not None:
        i = comparison.index(rule.metric)
        out[f"delta_{rule.metric}_lower_bound"] = float(comparison.paired.lower_bound[i])
    return out


def _record_without_champion(
    cfg: DictConfig,
    output_dir: Path,
    uri: str,
    rule: PromotionRule,
    decision: PromotionDecision,
    candidate: EvaluationRun,
    tags: Mapping[str, str],
) -> tuple[dict[str, Any], list[Path], RecordedRun]:
    summary = {
        "task": candidate.task,
        "candidate": {
            "ref": candidate.ref,
            "run_id": candidate.run_id,
            "model": model_ref(candidate),
            "dataset_digest": candidate.digest,
        },
        "baseline": None,
        "candidate_metrics": {m: candidate.metrics.get(m) for m in rule.floors},
        "evaluator_version": __version__,
        **_decision_summary(rule, decision, None),
    }
    written = write_all(
        output_dir,
        {
            "summary.json": write_json(summary),
            "config.yaml": write_text(OmegaConf.to_yaml(cfg, resolve=True)),
        },
    )
    record = RunRecord(
        params=_promotion_params(rule),
        tags={
            "evaluator.kind": "promotion",
            "evaluator.task": candidate.task,
            "evaluator.version": __version__,
            "comparison.candidate_run_id": candidate.run_id,
            "comparison.candidate_ref": candidate.ref,
            "comparison.candidate_model": model_ref(candidate),
            "dataset.digest": candidate.digest or "",
            "mlflow.note.content": f"Promotion check without a champion: {decision.reason}.",
            **tags,
        },
        metrics={
            **{f"candidate_{m}": float(candidate.metrics[m]) for m in rule.floors},
            **_decision_metrics(rule, decision, None),
        },
        artifacts=artifact_list(written, output_dir),
    )
    exp = cfg.mlflow.experiment or experiment_name(uri, candidate.experiment_id)
    run = record_run(
        tracking_uri=uri,
        experiment=str(exp),
        run_name=cfg.run_name or f"promote {candidate.label} (no champion)",
        record=record,
        artifact_location=cfg.mlflow.artifact_location,
    )
    return summary, written, run


def _champion(uri: str, name: str, version: str, rule: PromotionRule) -> str | None:
    """The champion's version; None only for a model with no alias at all (a first promotion).

    Raises:
        InputError: the candidate is the champion; the champion alias is missing while the
            model has other aliases (a misspelt ``promote.champion_alias``, or a champion
            alias that was removed): deciding by floors then would be a silent mistake.
    """
    champion_mv = alias_version(uri, name, rule.champion_alias)
    if champion_mv is None:
        aliases = model_aliases(uri, name)
        if aliases:
            listed = ", ".join(f"{a!r} -> v{v}" for a, v in sorted(aliases.items()))
            raise InputError(
                f"registered model {name!r} has no alias {rule.champion_alias!r} (its aliases: "
                f"{listed}); set promote.champion_alias to the champion's alias, or point "
                f"{rule.champion_alias!r} at the champion version. Only a model with no alias "
                f"at all is promoted on promote.floors alone."
            )
        return None
    champion = str(champion_mv.version)
    if champion == version:
        raise InputError(
            f"version {version} of {name!r} already holds the alias {rule.champion_alias!r}; "
            f"promote another version against it."
        )
    return champion


def run_promote(cfg: DictConfig, output_dir: Path) -> PromoteOutcome:
    """``video-eval-promote model.name=NAME model.version=V``: decide, record, maybe apply.

    Raises:
        InputError: an unknown model / version, no evaluation run for it, incomparable
            evaluations, a metric without per-video values, a bad config value.
        TrackingError: MLflow failed.
    """
    usage = "video-eval-promote model.name=NAME model.version=V"
    name = required_value(cfg, "model.name", usage)
    version = required_value(cfg, "model.version", usage)
    rule = promotion_rule(cfg)
    boot = bootstrap_settings(cfg)
    uri = str(cfg.mlflow.tracking_uri)

    model_version(uri, name, version)  # the version must exist in the registry
    candidate = resolve_evaluation(uri, f"models:/{name}/{version}")
    champion = _champion(uri, name, version, rule)

    comparison = None
    if champion is not None:
        comparison = prepare_comparison(
            uri,
            candidate.ref,
            f"models:/{name}@{rule.champion_alias}",
            bootstrap=boot,
            extra_metrics=[rule.metric, *rule.guardrails],
            one_sided_alpha=rule.alpha,
            candidate=candidate,
            slices=rule.slices,
        )
    decision = _decide(rule, comparison, candidate)
    tags = _promotion_tags(rule, decision, name, version, champion)
    if comparison is not None:
        summary, files, run = _record_with_champion(
            cfg,
            output_dir,
            rule,
            decision,
            comparison,
            tags,
            champion=champion,
            default_name=f"promote {name} v{version} vs champion v{champion}",
        )
    else:
        summary, files, run = _record_without_champion(
            cfg, output_dir, uri, rule, decision, candidate, tags
        )
    sentence, moved = _record_in_registry(uri, name, version, champion, rule, decision, tags, run)
    document = decision_document(
        name=name,
        version=version,
        candidate=candidate,
        champion_version=champion,
        champion_alias=rule.champion_alias,
        previous_alias=rule.previous_alias,
        comparison=comparison,
        decision=decision,
        rule=rule.settings(),
        run_id=run.run_id,
        experiment_id=run.experiment_id,
        tracking_uri=uri,
        dry_run=not rule.apply,
        applied=bool(moved),
        aliases_moved=moved,
        sentence=sentence,
    )
    decision_file = write_all(output_dir, {DECISION_FILE: write_json(document)})[0]
    log_artifact(uri, run.run_id, decision_file)
    return PromoteOutcome(
        name,
        version,
        champion,
        candidate,
        comparison,
        decision,
        bool(moved),
        summary,
        output_dir,
        [*files, decision_file],
        run,
        document,
    )


def _record_with_champion(
    cfg: DictConfig,
    output_dir: Path,
    rule: PromotionRule,
    decision: PromotionDecision,
    comparison: Comparison,
    tags: Mapping[str, str],
    *,
    champion: str | None,
    default_name: str,
) -> tuple[dict[str, Any], list[Path], RecordedRun]:
    """The evidence run: the comparison with the champion, with the decision on it."""
    return record_comparison(
        comparison,
        output_dir,
        tracking_uri=str(cfg.mlflow.tracking_uri),
        experiment=cfg.mlflow.experiment,
        run_name=cfg.run_name or default_name,
        artifact_location=cfg.mlflow.artifact_location,
        plots=bool(cfg.plots),
        log_table=bool(cfg.mlflow.log_table),
        extra_tags=tags,
        extra_metrics=_decision_metrics(rule, decision, comparison),
        extra_params=_promotion_params(rule),
        extra_summary=_decision_summary(rule, decision, champion),
        config_yaml=OmegaConf.to_yaml(cfg, resolve=True),
    )


def _record_in_registry(
    uri: str,
    name: str,
    version: str,
    champion: str | None,
    rule: PromotionRule,
    decision: PromotionDecision,
    tags: Mapping[str, str],
    run: RecordedRun,
) -> tuple[str, dict[str, str]]:
    """Tag the candidate version, add the decision's sentence to its description and, for an
    applied promote decision, move the aliases.

    Returns:
        The sentence, and alias -> the version it now points to (empty when nothing moved).
    """
    set_version_tags(
        uri,
        name,
        version,
        {
            "promotion.decision": tags["promotion.decision"],
            "promotion.reason": decision.reason,
            "promotion.evidence_run": run.run_id,
            "promotion.champion_version": champion or "none",
            "promotion.mode": tags["promotion.mode"],
        },
    )
    sentence = history_sentence(
        version=version,
        champion_version=champion,
        decision=decision,
        dry_run=not rule.apply,
        run_id=run.run_id,
    )
    append_version_description(uri, name, version, sentence)
    moved: dict[str, str] = {}
    if rule.apply and decision.promote:
        moved = move_aliases(
            uri, name, version, champion, (rule.champion_alias, rule.previous_alias), run.run_id
        )
    return sentence, moved


def format_promote_summary(outcome: PromoteOutcome, cfg: DictConfig) -> str:
    """The printed decision: the comparison table, the decision and its reason, what moved."""
    o = outcome
    rule = promotion_rule(cfg)
    against = f"champion v{o.champion_version}" if o.champion_version else "no champion"
    lines = [f"video-eval-promote: {o.name} v{o.version} against {against}"]
    if o.comparison is not None:
        lines += format_comparison(o.comparison)
    lines.append(f"  decision: {o.decision_word.upper()}: {o.decision.reason}")
    if o.applied:
        moved = f"alias {rule.champion_alias!r} -> v{o.version}"
        if o.champion_version:
            moved += f", {rule.previous_alias!r} -> v{o.champion_version}"
        lines.append(f"  applied: {moved}")
    elif rule.apply:
        lines.append("  nothing applied: the candidate was rejected, no alias moved")
    else:
        lines.append(
            f"  dry run: no alias moved; add promote.apply=true to "
            f"{'move the champion alias' if o.decision.promote else 'apply a promote decision'}"
        )
    lines.append(
        f"  recorded: tags promotion.* and a line of the description of {o.name} version "
        f"{o.version}; evidence run {o.run.run_id}"
    )
    lines.append(f"  outputs: {o.output_dir} (decision.json: exit code {o.exit_code})")
    lines.append(f"  view: {ui_hint(o.run.tracking_uri, o.run.experiment_id, o.run.run_id)}")
    return "\n".join(lines)
