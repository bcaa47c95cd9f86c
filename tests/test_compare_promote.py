"""Compare and promote end to end against real MLflow stores (sqlite in tmp_path, a server).

The evaluations are real `run_poster` / `run_episode` runs of the demo sets; the numbers are
checked against an independent computation from the runs' own match tables and scipy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from scipy.stats import binomtest

from evaluator.core.paired_stats import paired_delta
from evaluator.decisions.compare_command import run_compare
from evaluator.decisions.promote_command import run_promote
from evaluator.demo.episode_data import make_episode_demo
from evaluator.errors import InputError
from evaluator.integrations.register_command import register_poster_versions
from evaluator.tasks.poster import run_poster
from evaluator.tracking.mlflow_run import _tracking_uri
from tests.conftest import artifact_paths, compose_config, episode_demo_runs

NAME = "poster-ranker"


def _evaluate(demo_files, uri: str, out: Path, model: str, version: str, *extra: str) -> str:
    cfg = compose_config(
        [
            f"data.experts={demo_files['experts']}",
            f"data.predictions={demo_files[model]}",
            f"mlflow.tracking_uri={uri}",
            f"model.name={NAME}",
            f"model.version={version}",
            *extra,
        ]
    )
    return run_poster(cfg, out / f"{model}-{version}").run.run_id


def _build_store(demo_files, root: Path, uri: str, champion: str | None = "1") -> dict[str, str]:
    runs = {
        "baseline": _evaluate(demo_files, uri, root, "baseline", "1"),
        "candidate": _evaluate(demo_files, uri, root, "candidate", "2"),
    }
    register_poster_versions(uri, NAME, ["1", "2"], champion=champion)
    return runs


@pytest.fixture(scope="module")
def store(demo_files, tmp_path_factory) -> dict:
    """A sqlite store with v1 (baseline, champion) and v2 (candidate) evaluated and registered."""
    root = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    runs = _build_store(demo_files, root, uri)
    return {"root": root, "uri": uri, **runs}


def _copy_store(store: dict, tmp_path: Path) -> str:
    """A private copy of the store's database (artifacts stay shared, read-only)."""
    shutil.copy(store["root"] / "mlflow.db", tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _compare(uri: str, out: Path, *overrides: str):
    cfg = compose_config([f"mlflow.tracking_uri={uri}", *overrides], "compare")
    return run_compare(cfg, out)


def _promote(uri: str, out: Path, *overrides: str):
    cfg = compose_config(
        [f"mlflow.tracking_uri={uri}", f"model.name={NAME}", *overrides], "promote"
    )
    return run_promote(cfg, out)


def _hits(root: Path, model: str, version: str) -> pd.DataFrame:
    table = pd.read_parquet(root / f"{model}-{version}" / "match_table.parquet")
    table = table[table["eligible"]].set_index("video_id")
    rank = table["first_hit_rank"].astype("Float64").fillna(0).astype(int)
    return pd.DataFrame({k: (rank >= 1) & (rank <= k) for k in (1, 5, 10)})


# ----------------------------------------------------------------------------- compare


def test_compare_by_run_ids_records_the_paired_numbers(store, tmp_path: Path) -> None:
    uri = _copy_store(store, tmp_path)
    outcome = _compare(
        uri, tmp_path / "cmp", f"candidate={store['candidate']}", f"baseline={store['baseline']}"
    )
    client = MlflowClient(uri, registry_uri=uri)
    run = client.get_run(outcome.run.run_id)
    assert run.info.status == "FINISHED"
    m, tags = run.data.metrics, run.data.tags

    # Independent reference: the two runs' own local match tables, aligned by video id.
    cand = _hits(store["root"], "candidate", "2")
    base = _hits(store["root"], "baseline", "1").loc[cand.index]
    assert m["n_videos_compared"] == len(cand) == 100
    for k in (1, 5, 10):
        c, b = cand[k].to_numpy(), base[k].to_numpy()
        gained, lost = int((c & ~b).sum()), int((~c & b).sum())
        assert m[f"delta_recall_at_{k}"] == pytest.approx(c.mean() - b.mean(), abs=1e-12)
        assert m[f"n_videos_gained_at_{k}"] == gained and m[f"n_videos_lost_at_{k}"] == lost
        p = binomtest(min(gained, lost), gained + lost, 0.5).pvalue
        assert m[f"mcnemar_p_at_{k}"] == pytest.approx(p, rel=1e-9)
        ref = paired_delta(c, b, n_resamples=1000, confidence=0.95, seed=0)
        assert m[f"delta_recall_at_{k}_ci_low"] == pytest.approx(ref.ci_low[0], abs=1e-12)
        assert m[f"delta_recall_at_{k}_ci_high"] == pytest.approx(ref.ci_high[0], abs=1e-12)
        assert m[f"delta_recall_at_{k}_ci_low"] <= m[f"delta_recall_at_{k}"]
        assert m[f"delta_recall_at_{k}"] <= m[f"delta_recall_at_{k}_ci_high"]
    assert m["n_videos_gained"] == m["n_videos_gained_at_10"] > 0
    assert m["n_videos_lost"] == m["n_videos_lost_at_10"] > 0
    curve = client.get_metric_history(run.info.run_id, "delta_recall_at_k")
    assert sorted(p.step for p in curve) == list(range(1, 11))

    assert tags["evaluator.kind"] == "comparison"
    assert tags["comparison.candidate_run_id"] == store["candidate"]
    assert tags["comparison.baseline_run_id"] == store["baseline"]
    assert tags["comparison.candidate_model"] == f"models:/{NAME}/2"
    assert tags["comparison.baseline_model"] == f"models:/{NAME}/1"
    assert tags["comparison.same_dataset"] == "true"
    assert "comparison.warning" not in tags and "model.name" not in tags
    assert run.info.experiment_id == client.get_run(store["candidate"]).info.experiment_id

    assert {
        "summary.json",
        "config.yaml",
        "video_diff.parquet",
        "video_diff.json",
        "sweep_delta.parquet",
        "plots/sweep_delta.png",
        "plots/recall_at_k.png",
        "plots/delta_recall_at_k.png",
    } <= artifact_paths(client, run.info.run_id)

    # video_diff: gained first, then lost, then the rest; ids sorted within each block.
    diff = pd.read_parquet(client.download_artifacts(run.info.run_id, "video_diff.parquet"))
    changes = diff["change"].tolist()
    n_g, n_l = int(m["n_videos_gained"]), int(m["n_videos_lost"])
    assert changes == ["gained"] * n_g + ["lost"] * n_l + ["same"] * (len(diff) - n_g - n_l)
    for label in ("gained", "lost", "same"):
        ids = diff.loc[diff["change"] == label, "video_id"].tolist()
        assert ids == sorted(ids)
    row = diff.set_index("video_id")
    np.testing.assert_array_equal(row.loc[cand.index, "candidate_hit_at_10"], cand[10])
    np.testing.assert_array_equal(row.loc[cand.index, "baseline_hit_at_10"], base[10])
    gained = row[row["change"] == "gained"]
    assert gained["candidate_hit_at_10"].all() and not gained["baseline_hit_at_10"].any()
    assert (gained["baseline_miss_reason"] != "").all()
    assert (gained["candidate_miss_reason"] == "").all()

    # The sweep delta at the configured point is the headline delta.
    sweep = pd.read_parquet(client.download_artifacts(run.info.run_id, "sweep_delta.parquet"))
    at = sweep[(sweep.time_tolerance_s == 3.0) & (sweep.min_cosine == 0.5)]
    assert at["delta"].item() == pytest.approx(m["delta_recall_at_10"], abs=1e-12)
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    assert summary["metrics"]["delta_recall_at_10"] == pytest.approx(m["delta_recall_at_10"])


def test_compare_by_model_references_and_the_registered_models(store, tmp_path: Path) -> None:
    uri = _copy_store(store, tmp_path)
    outcome = _compare(
        uri, tmp_path / "cmp", f"candidate=models:/{NAME}/2", f"baseline=models:/{NAME}@champion"
    )
    c = outcome.comparison
    assert (c.candidate.run_id, c.baseline.run_id) == (store["candidate"], store["baseline"])
    tags = MlflowClient(uri, registry_uri=uri).get_run(outcome.run.run_id).data.tags
    assert tags["comparison.candidate_ref"] == f"models:/{NAME}/2"
    assert tags["comparison.baseline_ref"] == f"models:/{NAME}@champion"

    client = MlflowClient(uri, registry_uri=uri)
    for version, key in (("1", "baseline"), ("2", "candidate")):
        mv = client.get_model_version(NAME, version)
        assert mv.tags["evaluation_run_id"] == store[key]
        assert mv.run_id == store[key]
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"

    # The registered pyfunc replays the recorded predictions: ranked frames of the given videos.
    with _tracking_uri(uri):
        loaded = mlflow.pyfunc.load_model(client.get_model_version(NAME, "2").source)
    frames = loaded.predict(pd.DataFrame({"video_id": ["vid000003", "vid000001"]}))
    assert list(dict.fromkeys(frames["video_id"])) == ["vid000003", "vid000001"]
    for _, group in frames.groupby("video_id"):
        assert group["rank"].tolist() == list(range(1, len(group) + 1))


def test_mismatched_evaluations_are_refused_unless_allowed(store, demo_files, tmp_path) -> None:
    uri = _copy_store(store, tmp_path)
    other = _evaluate(
        demo_files,
        uri,
        tmp_path,
        "candidate",
        "3",
        "metrics.min_expert_frames=4",
        "matching.time_tolerance_s=2.0",
        "sweep.enabled=false",
    )
    with pytest.raises(InputError) as info:
        _compare(uri, tmp_path / "a", f"candidate={other}", f"baseline={store['baseline']}")
    message = str(info.value)
    assert "dataset.digest differs" in message
    assert "matching.time_tolerance_s differs (candidate 2.0, baseline 3.0)" in message
    assert "metrics.min_expert_frames differs (candidate 4, baseline 5)" in message
    assert "allow_mismatch=true" in message
    assert not (tmp_path / "a").exists()

    outcome = _compare(
        uri,
        tmp_path / "b",
        f"candidate={other}",
        f"baseline={store['baseline']}",
        "allow_mismatch=true",
    )
    run = MlflowClient(uri, registry_uri=uri).get_run(outcome.run.run_id)
    warning = run.data.tags["comparison.warning"]
    assert "dataset.digest differs" in warning and "matching.time_tolerance_s" in warning
    assert run.data.tags["comparison.same_dataset"] == "false"
    # Only the videos scored in both runs are compared; the sweep delta needs both sweeps.
    assert run.data.metrics["n_videos_compared"] == 100
    assert run.data.metrics["n_videos_only_candidate"] > 0
    assert "plots/sweep_delta.png" not in artifact_paths(
        MlflowClient(uri, registry_uri=uri), run.info.run_id
    )
    assert "no sweep.parquet" in outcome.summary["sweep_note"]


@pytest.mark.parametrize(
    ("candidate", "baseline", "message"),
    [
        ("nosuchrun", "{baseline}", "'nosuchrun' is neither a run id"),
        ("models:/poster-ranker/9", "{baseline}", "Model Version .*version=9.* not found"),
        ("models:/poster-ranker@gold", "{baseline}", "has no alias 'gold'"),
        ("models:/nosuchmodel@champion", "{baseline}", "nosuchmodel"),
        ("models:/poster-ranker", "{baseline}", "not a model reference"),
        ("{baseline}", "{baseline}", "are the same evaluation run"),
        ("{candidate}", "", "baseline is required"),
    ],
)
def test_bad_references(store, tmp_path, candidate: str, baseline: str, message: str) -> None:
    fill = {"candidate": store["candidate"], "baseline": store["baseline"]}
    overrides = [f"candidate={candidate.format(**fill)}"]
    if baseline:
        overrides.append(f"baseline={baseline.format(**fill)}")
    with pytest.raises(InputError, match=message):
        _compare(store["uri"], tmp_path / "x", *overrides)


def test_a_comparison_run_is_not_an_evaluation(store, tmp_path: Path) -> None:
    uri = _copy_store(store, tmp_path)
    first = _compare(
        uri, tmp_path / "a", f"candidate={store['candidate']}", f"baseline={store['baseline']}"
    )
    with pytest.raises(InputError, match="is not an evaluation run \\(comparison\\)"):
        _compare(uri, tmp_path / "b", f"candidate={first.run.run_id}", "baseline=" + "x")


def test_episode_evaluations_compare_on_episode_accuracy(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    demo = make_episode_demo(300, seed=5)
    outcomes = episode_demo_runs(
        demo, tmp_path, uri, "model.name=episode-reader", "model.version={version}"
    )
    runs = {version: o.run.run_id for version, o in outcomes.items()}
    correct = {
        v: o.video_table.set_index("video_id")["episode_correct"] for v, o in outcomes.items()
    }
    client = MlflowClient(uri, registry_uri=uri)
    client.create_registered_model("episode-reader")
    for version in ("1", "2"):
        client.create_model_version(
            "episode-reader", f"runs:/{runs[version]}/", run_id=runs[version]
        )
    outcome = _compare(
        uri,
        tmp_path / "cmp",
        "candidate=models:/episode-reader/2",
        f"baseline={runs['1']}",
    )
    assert outcome.comparison.candidate.run_id == runs["2"]
    m = client.get_run(outcome.run.run_id).data.metrics
    c, b = correct["2"].to_numpy(), correct["1"].loc[correct["2"].index].to_numpy()
    gained, lost = int((c & ~b).sum()), int((~c & b).sum())
    assert m["delta_episode_accuracy"] == pytest.approx(c.mean() - b.mean(), abs=1e-12)
    assert (m["n_videos_gained"], m["n_videos_lost"]) == (gained, lost)
    p = binomtest(min(gained, lost), gained + lost, 0.5).pvalue
    assert m["mcnemar_p_episode_accuracy"] == pytest.approx(p, rel=1e-9)
    assert m["delta_episode_accuracy_ci_low"] <= m["delta_episode_accuracy"]
    diff = outcome.comparison.video_diff
    assert diff["change"].tolist()[:gained] == ["gained"] * gained


# ----------------------------------------------------------------------------- promote


def test_promote_dry_run_then_apply_moves_the_aliases(store, tmp_path: Path) -> None:
    uri = _copy_store(store, tmp_path)
    client = MlflowClient(uri, registry_uri=uri)
    dry = _promote(uri, tmp_path / "dry", "model.version=2")
    assert dry.decision.promote and not dry.applied
    assert dry.decision.reason.startswith("recall_at_10 +0.110 (95% lower bound +0.0")
    assert "recall_at_1 +0.160 within guardrail 0.020" in dry.decision.reason
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    mv = client.get_model_version(NAME, "2")
    assert mv.tags["promotion.decision"] == "promote"
    assert mv.tags["promotion.reason"] == dry.decision.reason
    assert mv.tags["promotion.evidence_run"] == dry.run.run_id
    evidence = client.get_run(dry.run.run_id)
    assert evidence.data.tags["promotion.decision"] == "promote"
    assert evidence.data.tags["promotion.reason"] == dry.decision.reason
    assert evidence.data.tags["promotion.mode"] == "dry_run"
    assert evidence.data.tags["comparison.candidate_run_id"] == store["candidate"]
    lb = evidence.data.metrics["delta_recall_at_10_lower_bound"]
    ref = paired_delta(
        _hits(store["root"], "candidate", "2")[10].to_numpy(),
        _hits(store["root"], "baseline", "1")
        .loc[_hits(store["root"], "candidate", "2").index][10]
        .to_numpy(),
        one_sided_alpha=0.05,
    )
    assert lb == pytest.approx(float(ref.lower_bound[0]), abs=1e-12) and lb > 0
    assert evidence.data.metrics["promotion_decision"] == 1.0

    applied = _promote(uri, tmp_path / "apply", "model.version=2", "promote.apply=true")
    assert applied.applied
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "2"
    assert str(client.get_model_version_by_alias(NAME, "previous_champion").version) == "1"
    assert client.get_run(applied.run.run_id).data.tags["promotion.applied"] == "true"
    assert client.get_model_version(NAME, "2").tags["promotion.mode"] == "apply"
    with pytest.raises(InputError, match="already holds the alias 'champion'"):
        _promote(uri, tmp_path / "again", "model.version=2")


def test_guardrail_and_primary_rejections(store, tmp_path: Path) -> None:
    uri = _copy_store(store, tmp_path)
    client = MlflowClient(uri, registry_uri=uri)
    client.set_registered_model_alias(NAME, "champion", "2")
    # v1 against champion v2: worse, so the gain test fails ...
    worse = _promote(uri, tmp_path / "a", "model.version=1", "promote.apply=true")
    assert not worse.decision.promote and not worse.applied
    assert worse.decision.reason.startswith("recall_at_10 -0.110 (95% lower bound -0.1")
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "2"
    assert client.get_model_version(NAME, "1").tags["promotion.decision"] == "reject"
    # ... and with a wide non-inferiority margin only the recall@1 guardrail rejects it.
    guarded = _promote(uri, tmp_path / "b", "model.version=1", "promote.min_delta=-0.5")
    assert not guarded.decision.promote
    assert guarded.decision.reason == "recall_at_1 -0.160 drops more than guardrail 0.020"
    unguarded = _promote(
        uri,
        tmp_path / "c",
        "model.version=1",
        "promote.min_delta=-0.5",
        "~promote.guardrails.recall_at_1",
    )
    assert unguarded.decision.promote


def test_floors_decide_when_there_is_no_champion(store, tmp_path: Path) -> None:
    uri = _copy_store(store, tmp_path)
    client = MlflowClient(uri, registry_uri=uri)
    client.delete_registered_model_alias(NAME, "champion")
    ok = _promote(uri, tmp_path / "a", "model.version=1")
    assert ok.decision.promote and ok.comparison is None
    assert ok.decision.reason == "no champion; recall_at_10 0.810 >= floor 0.500"
    run = client.get_run(ok.run.run_id)
    assert run.data.tags["evaluator.kind"] == "promotion"
    assert run.data.metrics["candidate_recall_at_10"] == pytest.approx(0.81)
    low = _promote(
        uri,
        tmp_path / "b",
        "model.version=1",
        "promote.floors.recall_at_10=0.9",
        "promote.apply=true",
    )
    assert not low.decision.promote
    assert low.decision.reason == "no champion; recall_at_10 0.810 below floor 0.900"
    assert not client.get_registered_model(NAME).aliases
    with pytest.raises(InputError, match="did not log"):
        _promote(uri, tmp_path / "d", "model.version=2", "+promote.floors.no_such_metric=1")
    applied = _promote(uri, tmp_path / "c", "model.version=1", "promote.apply=true")
    assert applied.applied
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"


def test_promote_config_errors(store, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"promote\.alpha must be in"):
        _promote(store["uri"], tmp_path, "model.version=2", "promote.alpha=1.5")
    with pytest.raises(InputError, match=r"model\.version is required"):
        _promote(store["uri"], tmp_path, "promote.alpha=0.1")
    with pytest.raises(InputError, match="no per-video values for metric 'precision_at_10'"):
        _promote(store["uri"], tmp_path, "model.version=2", "promote.metric=precision_at_10")


# ----------------------------------------------------------------------------- CLI and server


def _console(name: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name(name)
    return subprocess.run(
        [str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.slow
def test_promote_and_compare_commands(store, tmp_path: Path) -> None:
    uri = _copy_store(store, tmp_path)
    done = _console(
        "video-eval-promote",
        [f"mlflow.tracking_uri={uri}", f"model.name={NAME}", "model.version=2"],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "decision: PROMOTE: recall_at_10 +0.110" in done.stdout
    assert "dry run: no alias moved" in done.stdout
    bad = _console(
        "video-eval-compare",
        [f"mlflow.tracking_uri={uri}", f"candidate=models:/{NAME}/7", "baseline=x"],
        tmp_path,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("video-eval-compare: error: model poster-ranker version 7")
    assert "Traceback" not in bad.stderr


@pytest.mark.slow
def test_the_same_flow_against_a_tracking_server(demo_files, mlflow_server, tmp_path) -> None:
    runs = _build_store(demo_files, tmp_path, mlflow_server)
    outcome = _compare(
        mlflow_server,
        tmp_path / "cmp",
        f"candidate=models:/{NAME}/2",
        f"baseline=models:/{NAME}@champion",
    )
    assert outcome.comparison.candidate.run_id == runs["candidate"]
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    assert {"video_diff.parquet", "plots/sweep_delta.png"} <= artifact_paths(
        client, outcome.run.run_id
    )
    promoted = _promote(mlflow_server, tmp_path / "p", "model.version=2", "promote.apply=true")
    assert promoted.decision.promote and promoted.applied
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "2"
    assert str(client.get_model_version_by_alias(NAME, "previous_champion").version) == "1"
    assert client.get_model_version(NAME, "2").tags["promotion.evidence_run"] == (
        promoted.run.run_id
    )
