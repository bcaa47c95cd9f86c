"""Promotion as a CI gate: exit codes, decision.json, the history line, the Models tab.

Real MLflow throughout (a sqlite store in tmp_path, a real `mlflow server` for the recipes);
the CI recipes are read from docs/ci-gate.md and run command by command as a runner would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from evaluator.decisions.promote_command import run_promote
from evaluator.errors import InputError
from evaluator.integrations.register_command import register_poster_versions
from evaluator.tasks.poster import run_poster
from evaluator.tracking.logged_models import EXTERNAL_TAG
from tests.conftest import REPO, compose_config

NAME = "poster-ranker"


def _evaluate(experts: Path, predictions: Path, uri: str, out: Path, version: str) -> str:
    cfg = compose_config(
        [
            f"data.experts={experts}",
            f"data.predictions={predictions}",
            f"mlflow.tracking_uri={uri}",
            f"model.name={NAME}",
            f"model.version={version}",
        ]
    )
    return run_poster(cfg, out / f"v{version}").run.run_id


@pytest.fixture(scope="module")
def store(demo_files, tmp_path_factory) -> dict:
    """v1 (baseline, champion), v2 (candidate) and v3 (candidate on fewer expert videos)."""
    root = tmp_path_factory.mktemp("gate-store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    experts = pd.read_parquet(demo_files["experts"])
    fewer = root / "experts_fewer.parquet"
    experts[experts["video_id"] != experts["video_id"].iloc[0]].to_parquet(fewer, index=False)
    runs = {
        "1": _evaluate(demo_files["experts"], demo_files["baseline"], uri, root, "1"),
        "2": _evaluate(demo_files["experts"], demo_files["candidate"], uri, root, "2"),
        "3": _evaluate(fewer, demo_files["candidate"], uri, root, "3"),
    }
    register_poster_versions(uri, NAME, ["1", "2", "3"], champion="1")
    return {"root": root, "uri": uri, "runs": runs}


def _copy(store: dict, tmp_path: Path) -> tuple[str, MlflowClient]:
    shutil.copy(store["root"] / "mlflow.db", tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return uri, MlflowClient(uri, registry_uri=uri)


def _promote(uri: str, out: Path, *overrides: str):
    cfg = compose_config(
        [f"mlflow.tracking_uri={uri}", f"model.name={NAME}", *overrides], "promote"
    )
    return run_promote(cfg, out)


def _all_runs(client: MlflowClient) -> list:
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids, max_results=1000)


# ----------------------------------------------------------------------------- decision.json


def test_decision_json_is_on_disk_and_on_the_evidence_run(store, tmp_path: Path) -> None:
    uri, client = _copy(store, tmp_path)
    outcome = _promote(uri, tmp_path / "dry", "model.version=2")
    assert outcome.exit_code == 0 and not outcome.applied
    local = json.loads((tmp_path / "dry" / "decision.json").read_text())
    remote = Path(client.download_artifacts(outcome.run.run_id, "decision.json", str(tmp_path)))
    assert json.loads(remote.read_text()) == local == json.loads(json.dumps(outcome.document))
    evidence = client.get_run(outcome.run.run_id).data.metrics
    p = local["primary_metric"]
    assert local["decision"] == "promote" and local["exit_code"] == 0
    assert local["dry_run"] is True and local["applied"] is False and local["aliases_moved"] == {}
    assert local["candidate"] == {
        "version": "2",
        "run_id": store["runs"]["2"],
        "dataset_digest": client.get_run(store["runs"]["2"]).data.tags["dataset.digest"],
    }
    assert local["champion"] == {"version": "1", "alias": "champion", "run_id": store["runs"]["1"]}
    assert local["evidence_run"]["run_id"] == outcome.run.run_id
    assert p["name"] == "recall_at_10" and p["passed"] is True
    assert p["delta"] == evidence["delta_recall_at_10"]
    assert (p["ci_low"], p["ci_high"]) == (
        evidence["delta_recall_at_10_ci_low"],
        evidence["delta_recall_at_10_ci_high"],
    )
    assert p["lower_bound"] == evidence["delta_recall_at_10_lower_bound"] > 0
    assert p["p_value"] == evidence["mcnemar_p_at_10"]
    assert p["p_value_test"] == "mcnemar_exact"
    assert p["candidate"] - p["champion"] == pytest.approx(p["delta"], abs=1e-12)
    assert [g["metric"] for g in local["guardrails"]] == ["recall_at_1"]
    assert local["guardrails"][0]["max_drop"] == 0.02 and local["guardrails"][0]["passed"]
    assert local["rule"]["metric"] == "recall_at_10" and local["floors"] == []
    assert local["reason"] == outcome.decision.reason


def test_history_lines_on_both_versions_and_a_rejection(store, tmp_path: Path) -> None:
    uri, client = _copy(store, tmp_path)
    applied = _promote(uri, tmp_path / "a", "model.version=2", "promote.apply=true")
    assert applied.document["aliases_moved"] == {"previous_champion": "1", "champion": "2"}
    text = client.get_model_version(NAME, "2").description
    assert text == applied.document["sentence"]
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d video-eval-promote: PROMOTE v2 over champion v1 \(applied\): "
        r"recall_at_10 \+0\.110 \(95% lower bound \+0\.\d{3} > 0\.000\); recall_at_1 \+0\.160 "
        r"within guardrail 0\.020; evidence run " + applied.run.run_id + r"\.",
        text,
    )
    old = client.get_model_version(NAME, "1").description
    assert old.endswith(
        f"replaced as 'champion' by v2 (now 'previous_champion'); evidence run "
        f"{applied.run.run_id}."
    )
    # v1 against champion v2: a rejection, appended as a second paragraph.
    rejected = _promote(uri, tmp_path / "b", "model.version=1", "promote.apply=true")
    assert rejected.exit_code == 1 and not rejected.applied
    assert rejected.document["decision"] == "reject" and rejected.document["applied"] is False
    paragraphs = client.get_model_version(NAME, "1").description.split("\n\n")
    assert (
        len(paragraphs) == 2 and "REJECT v1 over champion v2 (rejected, no alias" in (paragraphs[1])
    )
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "2"


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.version=1"], "version 1 of 'poster-ranker' already holds the alias 'champion'"),
        (
            ["model.version=2", "promote.champion_alias=champ"],
            r"has no alias 'champ' \(its aliases: 'champion' -> v1\)",
        ),
        (["model.version=3"], "evaluated on different expert sets"),
        (["model.version=9"], "model poster-ranker version 9"),
    ],
)
def test_bad_input_moves_nothing_and_records_nothing(store, tmp_path, overrides, message) -> None:
    uri, client = _copy(store, tmp_path)
    before = {r.info.run_id for r in _all_runs(client)}
    with pytest.raises(InputError, match=message):
        _promote(uri, tmp_path / "out", *overrides, "promote.apply=true")
    runs = _all_runs(client)
    assert {r.info.run_id for r in runs} == before
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert {a: str(v) for a, v in client.get_registered_model(NAME).aliases.items()} == {
        "champion": "1"
    }
    assert not (tmp_path / "out" / "decision.json").exists()


# ----------------------------------------------------------------------------- Models tab


def test_each_evaluation_is_a_logged_model_named_after_the_model(store) -> None:
    client = MlflowClient(store["uri"], registry_uri=store["uri"])
    run = client.get_run(store["runs"]["2"])
    models = client.search_logged_models([run.info.experiment_id])
    by_version = {m.tags["model.version"]: m for m in models}
    assert sorted(by_version) == ["1", "2", "3"] and {m.name for m in models} == {NAME}
    model = by_version["2"]
    assert model.source_run_id == run.info.run_id
    assert model.tags["dataset.digest"] == run.data.tags["dataset.digest"]
    assert EXTERNAL_TAG not in model.tags  # registration logged the pyfunc into it
    assert model.params["matching.time_tolerance_s"] == run.data.params["matching.time_tolerance_s"]
    step0 = {m.key: m for m in model.metrics if m.step == 0}
    assert step0["recall_at_10"].value == run.data.metrics["recall_at_10"]
    assert set(run.data.metrics) == {m.key for m in model.metrics}
    dataset = run.inputs.dataset_inputs[0].dataset
    assert {(m.dataset_name, m.dataset_digest) for m in model.metrics} == {
        (dataset.name, dataset.digest)
    }
    curve = sorted((m.step, m.value) for m in model.metrics if m.key == "recall_at_k")
    assert [s for s, _ in curve] == list(range(1, 11))
    assert curve[9][1] == run.data.metrics["recall_at_10"]
    mv = client.get_model_version(NAME, "2")
    assert mv.source == f"models:/{model.model_id}" and mv.run_id == run.info.run_id
    assert [o.model_id for o in run.outputs.model_outputs] == [model.model_id]


def test_an_unnamed_evaluation_creates_no_logged_model(demo_files, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = compose_config(
        [
            f"data.experts={demo_files['experts']}",
            f"data.predictions={demo_files['baseline']}",
            f"mlflow.tracking_uri={uri}",
            "plots=false",
        ]
    )
    run = run_poster(cfg, tmp_path / "out").run
    client = MlflowClient(uri)
    assert client.search_logged_models([run.experiment_id]) == []
    assert client.get_run(run.run_id).data.metrics["recall_at_10"] > 0


# ----------------------------------------------------------------------------- the recipes


def _recipe_block(heading: str) -> dict:
    text = (REPO / "docs" / "ci-gate.md").read_text()
    section = text.split(f"\n## {heading}\n", 1)[1]
    return yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S)[1])


def _github() -> tuple[dict[str, str], list[str]]:
    job = _recipe_block("GitHub Actions")["jobs"]["gate"]
    return dict(job["env"]), [s["run"] for s in job["steps"] if "run" in s]


def _gitlab() -> tuple[dict[str, str], list[str]]:
    job = _recipe_block("GitLab CI")["model-gate"]
    return dict(job["variables"]), list(job["script"])


def _console_scripts(bin_dir: Path) -> Path:
    """The project's console scripts as small launchers of this checkout (as pip makes them)."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    bin_dir.mkdir()
    for name, target in scripts.items():
        module, func = target.split(":")
        path = bin_dir / name
        path.write_text(
            f"#!{sys.executable}\nimport sys\nfrom {module} import {func}\n"
            f"if __name__ == '__main__':\n    sys.exit({func}())\n"
        )
        path.chmod(0o755)
    return bin_dir


def _process(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run ``argv`` to its end (at most 300 s), its output captured as text."""
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _tool_env(**extra: str) -> dict[str, str]:
    """This process's environment without MLFLOW_* settings, this checkout importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(PYTHONPATH=str(REPO), **extra)
    return env


def _run_job(commands: list[str], env: dict[str, str], cwd: Path) -> list[int]:
    """Run the job's commands in order, stopping at the first failure; their exit codes."""
    codes = []
    for command in commands:
        if command.startswith("pip install"):
            continue  # the project is installed already (the launchers run this checkout)
        done = _process(["bash", "-e", "-c", command], cwd, env)
        codes.append(done.returncode)
        if done.returncode > 1:
            pytest.fail(f"{command!r} exited {done.returncode}:\n{done.stderr[-3000:]}")
        if done.returncode:
            break
    return codes


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["github", "gitlab"])
def test_the_ci_recipes_gate_three_versions(
    recipe: str, demo_files, mlflow_server, tmp_path: Path
) -> None:
    variables, commands = _github() if recipe == "github" else _gitlab()
    assert [c.split()[0] for c in commands if not c.startswith("pip")] == [
        "video-eval",
        "video-eval-register",
        "video-eval-promote",
    ]
    # GitHub against a sqlite store, GitLab against a real tracking server; a model name of
    # its own, since the server is shared with other tests.
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}" if recipe == "github" else mlflow_server
    name = f"poster-ranker-{recipe}"
    env = _tool_env()
    env.update({k: str(v) for k, v in variables.items() if "${{" not in str(v)})
    env["MODEL_NAME"] = name
    env["MLFLOW_TRACKING_URI"] = uri
    env["PATH"] = f"{_console_scripts(tmp_path / 'bin')}{os.pathsep}{env['PATH']}"
    (tmp_path / "eval").mkdir()
    (tmp_path / "predictions").mkdir()
    shutil.copy(demo_files["experts"], tmp_path / env["EXPERTS"])
    # v3 is v1's predictions again: worse than the champion v2.
    for version, model in (("1", "baseline"), ("2", "candidate"), ("3", "baseline")):
        shutil.copy(demo_files[model], tmp_path / "predictions" / f"{name}-v{version}.parquet")
    client = MlflowClient(uri, registry_uri=uri)
    expected = {
        "1": ([0, 0, 0], "promote"),
        "2": ([0, 0, 0], "promote"),
        "3": ([0, 0, 1], "reject"),
    }
    for version, (codes, word) in expected.items():
        if (tmp_path / "outputs").exists():
            shutil.rmtree(tmp_path / "outputs")
        assert _run_job(commands, {**env, "MODEL_VERSION": version}, tmp_path) == codes
        decision = json.loads((tmp_path / "outputs" / "promote" / "decision.json").read_text())
        assert decision["decision"] == word and decision["exit_code"] == codes[-1]
        assert decision["candidate"]["version"] == version
        assert decision["applied"] is (word == "promote")
    aliases = client.get_registered_model(name).aliases
    assert {a: str(v) for a, v in aliases.items()} == {"champion": "2", "previous_champion": "1"}
    history = client.get_model_version(name, "3").description
    assert "REJECT v3 over champion v2 (rejected, no alias moved): recall_at_10 -0.110" in history
    assert client.get_model_version(name, "1").description.startswith(
        f"{decision['decided_at'][:10]} video-eval-promote: PROMOTE v1 with no champion (applied)"
    )
    runs = [r for r in _all_runs(client) if r.data.tags.get("model.name") == name]
    assert len(runs) == 3 and {r.info.status for r in runs} == {"FINISHED"}


@pytest.mark.slow
def test_exit_codes_of_the_commands(store, tmp_path: Path) -> None:
    uri, _ = _copy(store, tmp_path)
    bin_dir = _console_scripts(tmp_path / "bin")
    env = _tool_env(MLFLOW_TRACKING_URI=uri)

    def run(*args: str) -> subprocess.CompletedProcess:
        argv = [str(bin_dir / args[0]), *args[1:], f"hydra.run.dir={tmp_path / 'out'}"]
        return _process(argv, tmp_path, env)

    help_text = run("video-eval-promote", "--help").stdout
    assert "1  REJECT" in help_text and "4  internal error" in help_text
    mismatch = run("video-eval-promote", f"model.name={NAME}", "model.version=3")
    assert mismatch.returncode == 2 and "different expert sets" in mismatch.stderr
    alias = run("video-eval-promote", f"model.name={NAME}", "model.version=2", "promote.alpha=2")
    assert alias.returncode == 2
    assert alias.stderr.startswith(
        "video-eval-promote: error: config: promote.alpha=2.0 is out of range; allowed:"
    )
    promoted = run("video-eval-promote", f"model.name={NAME}", "model.version=2")
    assert promoted.returncode == 0, promoted.stderr
    assert "dry run: no alias moved" in promoted.stdout
    # v2 gains +0.110 on recall_at_10: asking for more than half a point more is a REJECT.
    rejected = run(
        "video-eval-promote", f"model.name={NAME}", "model.version=2", "promote.min_delta=0.5"
    )
    assert rejected.returncode == 1, rejected.stderr
    assert "decision: REJECT: recall_at_10 +0.110" in rejected.stdout
    assert json.loads((tmp_path / "out" / "decision.json").read_text())["exit_code"] == 1
    env.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="5")
    unreachable = run(
        "video-eval-promote",
        f"model.name={NAME}",
        "model.version=2",
        "mlflow.tracking_uri=http://127.0.0.1:9",
    )
    assert unreachable.returncode == 3, unreachable.stderr[-2000:]
    # An unexpected exception is a bug: exit 4 with the traceback, never 1.
    crash = _process(
        [
            sys.executable,
            "-c",
            "import sys, evaluator.decisions.promote_command as p\n"
            "def broken(cfg, out):\n    raise RuntimeError('boom')\n"
            "p.run_promote = broken\n"
            "from evaluator.cli import promote_main\n"
            f"sys.argv = ['video-eval-promote', 'model.name={NAME}', 'model.version=2', "
            f"'hydra.run.dir={tmp_path / 'crash'}']\n"
            "promote_main()\n",
        ],
        tmp_path,
        env,
    )
    assert crash.returncode == 4
    assert "RuntimeError: boom" in crash.stderr and "internal error" in crash.stderr
