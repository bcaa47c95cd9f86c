"""End to end on a real sqlite MLflow store: the text metrics, their artifacts, and compare /
promote on text_exact_match, checked against plain loops over the demo's rows."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from scipy.stats import binomtest

from evaluator.decisions.compare_command import prepare_comparison, run_compare
from evaluator.decisions.promote_command import run_promote
from evaluator.demo.episode_data import make_episode_demo
from evaluator.errors import InputError
from tests.conftest import artifact_paths, compose_config, episode_demo_runs
from tests.reference.episode_text import ref_consensus_metrics, ref_normalize, ref_text_metrics

NAME = "episode-reader"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Both demo episode models (with text columns) evaluated with the demo's cases as slices,
    recorded in a sqlite store and registered as versions 1 (champion) and 2."""
    root = tmp_path_factory.mktemp("episode_text")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    demo = make_episode_demo(300, seed=5)
    slices = root / "cases.parquet"
    demo.cases.to_parquet(slices, index=False)
    outcomes = episode_demo_runs(
        demo,
        root,
        uri,
        f"model.name={NAME}",
        "model.version={version}",
        f"data.slices={slices}",
        "episode.bootstrap.n_resamples=200",
    )
    client = MlflowClient(uri, registry_uri=uri)
    client.create_registered_model(NAME)
    for version in ("1", "2"):
        run_id = outcomes[version].run.run_id
        client.create_model_version(NAME, f"runs:/{run_id}/", run_id=run_id)
    client.set_registered_model_alias(NAME, "champion", "1")
    return {"root": root, "uri": uri, "demo": demo, "outcomes": outcomes, "client": client}


def _rows(demo, key: str) -> list[dict]:
    return demo.models[key].to_dict(orient="records")


def _plain(rows: list[dict]) -> list[dict]:
    """The demo rows with Python None for missing values (as the references expect)."""
    out = []
    for r in rows:
        te = r["text_episode"]
        out.append(
            {
                **r,
                "text_episode": None if te is None or math.isnan(te) else int(te),
                "text_true": r["text_true"] if isinstance(r["text_true"], str) else None,
                "text_read": r["text_read"] if isinstance(r["text_read"], str) else None,
            }
        )
    return out


def test_the_logged_text_metrics_equal_plain_loops(store) -> None:
    client, demo = store["client"], store["demo"]
    outcome = store["outcomes"]["1"]
    rows = _plain(_rows(demo, "episode_baseline"))
    expected = {**ref_text_metrics(rows), **ref_consensus_metrics(rows, 0.9)}
    logged = client.get_run(outcome.run.run_id).data.metrics
    for name, value in expected.items():
        assert logged[name] == pytest.approx(value, rel=1e-12), name
    assert logged["n_text_videos"] == sum(r["text_true"] is not None for r in rows)
    assert logged["text_cer_ci_low"] <= logged["text_cer"] <= logged["text_cer_ci_high"]
    assert (
        logged["text_exact_match_ci_low"]
        <= logged["text_exact_match"]
        <= logged["text_exact_match_ci_high"]
    )
    # The existing numbers are still there, unchanged in meaning.
    assert logged["episode_accuracy"] == pytest.approx(
        sum(r["predicted_episode"] == r["true_episode"] for r in rows) / len(rows)
    )


def test_groups_and_slices_carry_the_text_columns(store) -> None:
    demo, outcome = store["demo"], store["outcomes"]["1"]
    rows = _plain(_rows(demo, "episode_baseline"))
    groups = outcome.groups.set_index("series_id")
    for series, g in groups.iterrows():
        part = [r for r in rows if r["series_id"] == series]
        ref = {**ref_text_metrics(part), **ref_consensus_metrics(part, 0.9)}
        for name in ("text_cer", "text_exact_match", "n_text_videos", "consensus_coverage"):
            assert g[name] == pytest.approx(ref[name], rel=1e-12, nan_ok=True), (series, name)
    table = pd.read_parquet(store["root"] / "episode_baseline" / "slices.parquet")
    cases = demo.cases.set_index("video_id")
    logged = store["client"].get_run(outcome.run.run_id).data.metrics
    for s in table.itertuples(index=False):
        part = [r for r in rows if cases.loc[r["video_id"], s.slice_column] == s.slice_value]
        ref = ref_text_metrics(part)
        assert s.text_cer == pytest.approx(ref["text_cer"], rel=1e-12)
        assert s.text_exact_match == pytest.approx(ref["text_exact_match"], rel=1e-12)
        assert s.text_cer_ci_low <= s.text_cer <= s.text_cer_ci_high
        assert logged[f"{s.metric_key}/text_cer"] == pytest.approx(s.text_cer)
        assert logged[f"{s.metric_key}/readings_agree"] == pytest.approx(s.readings_agree)


def test_artifacts_worst_misreads_and_report(store) -> None:
    client, demo, outcome = store["client"], store["demo"], store["outcomes"]["1"]
    run_id = outcome.run.run_id
    arts = artifact_paths(client, run_id)
    assert {
        "episode_text.parquet",
        "episode_text.json",
        "plots/text_cer_per_case.png",
        "plots/consensus_risk_coverage.png",
        "report.html",
    } <= arts
    misreads = pd.read_parquet(client.download_artifacts(run_id, "episode_text.parquet"))
    rows = _plain(_rows(demo, "episode_baseline"))
    wrong = [
        r
        for r in rows
        if r["text_true"] is not None
        and ref_normalize(r["text_read"]) != ref_normalize(r["text_true"])
    ]
    assert len(misreads) == len(wrong) > 0
    assert misreads["edit_distance"].is_monotonic_decreasing
    assert {"burn_in", "font", "language", "series_id"} <= set(misreads.columns)
    first = misreads.iloc[0]
    assert demo.cases.set_index("video_id").loc[first["video_id"], "font"] == first["font"]
    videos = pd.read_parquet(client.download_artifacts(run_id, "episode_videos.parquet"))
    assert videos["text_exact_match"].mean() == pytest.approx(
        client.get_run(run_id).data.metrics["text_exact_match"]
    )
    page = Path(client.download_artifacts(run_id, "report.html")).read_text(encoding="utf-8")
    assert "Single model vs consensus" in page and "Worst misreads" in page
    assert "text_cer_per_case.png" in page and "data:image/png;base64," in page
    assert str(first["video_id"]) in page


def test_compare_pairs_text_exact_match_per_video(store, tmp_path: Path) -> None:
    uri, demo = store["uri"], store["demo"]
    cfg = compose_config(
        [f"mlflow.tracking_uri={uri}", f"candidate=models:/{NAME}/2", f"baseline=models:/{NAME}/1"],
        "compare",
    )
    outcome = run_compare(cfg, tmp_path / "cmp")
    c = {r["video_id"]: r for r in _plain(_rows(demo, "episode_candidate"))}
    b = {r["video_id"]: r for r in _plain(_rows(demo, "episode_baseline"))}
    gained = lost = cand = base = n = 0
    for vid, r in c.items():  # one video at a time, over the transcribed ones
        if r["text_true"] is None:
            continue
        truth = ref_normalize(r["text_true"])
        c_ok = ref_normalize(r["text_read"]) == truth
        b_ok = ref_normalize(b[vid]["text_read"]) == truth
        n, cand, base = n + 1, cand + c_ok, base + b_ok
        gained, lost = gained + (c_ok and not b_ok), lost + (b_ok and not c_ok)
    m = MlflowClient(uri).get_run(outcome.run.run_id).data.metrics
    assert m["candidate_text_exact_match"] == pytest.approx(cand / n, rel=1e-12)
    assert m["baseline_text_exact_match"] == pytest.approx(base / n, rel=1e-12)
    assert m["delta_text_exact_match"] == pytest.approx((cand - base) / n, rel=1e-12)
    assert (m["n_videos_gained_text_exact_match"], m["n_videos_lost_text_exact_match"]) == (
        gained,
        lost,
    )
    p = binomtest(min(gained, lost), gained + lost, 0.5).pvalue
    assert m["mcnemar_p_text_exact_match"] == pytest.approx(p, rel=1e-9)
    assert m["n_videos_compared"] == len(c)  # episode_accuracy still over every video
    assert f"paired over the {n} compared videos" in outcome.comparison.sweep_note
    diff = outcome.comparison.video_diff.set_index("video_id")
    some = next(vid for vid, r in c.items() if r["text_true"] is not None)
    assert diff.loc[some, "text_true"] == c[some]["text_true"]
    assert diff.loc[some, "candidate_text_exact_match"] == (
        ref_normalize(c[some]["text_read"]) == ref_normalize(c[some]["text_true"])
    )
    for vid in list(c)[:50]:  # reads as given ("" kept as null: both mean nothing read)
        got, given = diff.loc[vid, "baseline_text_read"], b[vid]["text_read"] or None
        assert (pd.isna(got) and given is None) or got == given


def test_promote_on_text_exact_match(store, tmp_path: Path) -> None:
    uri = store["uri"]

    def promote(out: str, *extra: str):
        cfg = compose_config(
            [
                f"mlflow.tracking_uri={uri}",
                f"model.name={NAME}",
                "model.version=2",
                "promote=episode",
                "promote.metric=text_exact_match",
                *extra,
            ],
            "promote",
        )
        return run_promote(cfg, tmp_path / out)

    outcome = promote("p")
    c = outcome.comparison
    i = c.index("text_exact_match")
    summary = json.loads((tmp_path / "p" / "decision.json").read_text())
    assert summary["primary_metric"]["name"] == "text_exact_match"
    assert summary["primary_metric"]["delta"] == pytest.approx(float(c.paired.delta[i]))
    # The slice gate tests text_exact_match on the transcribed videos of each case.
    assert c.slices is not None and "candidate_text_exact_match" in c.slices.table.columns
    n_text = int(store["client"].get_run(c.candidate.run_id).data.metrics["n_text_videos"])
    assert c.slices.table.groupby("slice_column")["n_videos"].sum().eq(n_text).all()
    # Its lower bound must clear min_delta: a margin it cannot clear rejects.
    rejected = promote("r", "promote.min_delta=0.5")
    assert not rejected.decision.promote
    assert rejected.decision.reason.startswith("text_exact_match +0.")
    # As a guardrail beside episode_accuracy: the point delta must not fall by more than 0.
    guarded = promote(
        "g", "promote.metric=episode_accuracy", "+promote.guardrails.text_exact_match=0"
    )
    (check,) = [x for x in guarded.decision.checks if x.kind == "guardrail"]
    assert check.metric == "text_exact_match" and check.passed
    assert check.value == pytest.approx(float(c.paired.delta[i]))


def test_without_transcriptions_text_exact_match_is_refused(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    plain = make_episode_demo(120, seed=5)
    for key in plain.models:
        plain.models[key] = plain.models[key].drop(
            columns=["text_true", "text_read", "text_episode"]
        )
    outcomes = episode_demo_runs(plain, tmp_path, uri, "model.version={version}")
    assert "text_cer" not in outcomes["1"].summary["metrics"]
    assert not (tmp_path / "episode_baseline" / "episode_text.parquet").exists()
    ids = {v: o.run.run_id for v, o in outcomes.items()}
    c = prepare_comparison(uri, ids["2"], ids["1"])
    assert c.names == ("episode_accuracy",)
    with pytest.raises(InputError, match="has no per-video text_exact_match"):
        prepare_comparison(uri, ids["2"], ids["1"], extra_metrics=["text_exact_match"])
