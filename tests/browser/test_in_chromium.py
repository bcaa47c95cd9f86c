"""Real-browser checks in headless Debian Chromium: report.html and the MLflow UI."""

from __future__ import annotations

import os
import re
import urllib.request
from pathlib import Path

import pytest

from evaluator.report.chromium import (
    CHROMIUM,
    chart_view,
    chromium_available,
    rendered_dom,
    run_chromium,
)
from evaluator.tasks.poster import run_poster
from tests.conftest import compose_config, mlflow_process

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not chromium_available(),
        reason=f"{CHROMIUM} is missing (apt-get install -y chromium; .ci/run installs it)",
    ),
]


@pytest.fixture(scope="module")
def evaluated(demo_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """The two demo models evaluated into one sqlite store; returns (store dir, outcomes)."""
    root = tmp_path_factory.mktemp("browser")
    outcomes = {}
    for model in ("baseline", "candidate"):
        cfg = compose_config(
            [
                f"data.experts={demo_files['experts']}",
                f"data.predictions={demo_files[model]}",
                f"mlflow.tracking_uri=sqlite:///{root / 'mlflow.db'}",
                "report.page_size=20",
            ]
        )
        outcomes[model] = run_poster(cfg, root / model)
    return root, outcomes


def _with_script(report: Path, script: str, out: Path) -> str:
    """A copy of the report that runs ``script`` after the page's own code (user actions)."""
    page = report.read_text()
    out.write_text(page.replace("</body>", f"<script>{script}</script></body>"))
    return out.as_uri()


def _articles(dom: str) -> list[str]:
    return re.findall(r'<article class="video (hit|miss)" data-video="([^"]+)"', dom)


def test_report_renders_its_gallery(evaluated) -> None:
    _, outcomes = evaluated
    outcome = outcomes["baseline"]
    dom = run_chromium((outcome.output_dir / "report.html").as_uri(), dump_dom=True)
    articles = _articles(dom)
    assert len(articles) == 20  # one page
    table = outcome.match_table[outcome.match_table["eligible"]]
    n_miss = int(table["first_hit_rank"].isna().sum())
    assert n_miss > 0
    assert [kind for kind, _ in articles[:n_miss]] == ["miss"] * min(n_miss, 20)
    assert f'data-matching="{len(table)}"' in dom
    assert "<svg" in dom and "<circle" in dom  # the timeline strips were drawn
    rendered = re.sub(r"<script.*?</script>", "", dom, flags=re.S)
    for src in re.findall(r'<img[^>]* src="([^"]*)"', rendered):
        assert src.startswith("data:"), src
    assert "Poster frames: baseline" in dom


def test_report_search_and_filter(evaluated, tmp_path: Path) -> None:
    _, outcomes = evaluated
    outcome = outcomes["baseline"]
    report = outcome.output_dir / "report.html"
    table = outcome.match_table[outcome.match_table["eligible"]]
    target = str(table.iloc[len(table) // 2]["video_id"])
    search = (
        "var q = document.getElementById('q'); q.value = "
        f"'{target.upper()}'; q.dispatchEvent(new Event('input'));"
    )
    dom = run_chromium(_with_script(report, search, tmp_path / "s.html"), dump_dom=True)
    assert [vid for _, vid in _articles(dom)] == [target]

    reason = table["miss_reason"].replace("", None).dropna().value_counts().index[0]
    expected = sorted(table.loc[table["miss_reason"] == reason, "video_id"].astype(str))
    pick = (
        "var f = document.getElementById('filter'); f.value = "
        f"'reason:{reason}'; f.dispatchEvent(new Event('change'));"
    )
    dom = run_chromium(_with_script(report, pick, tmp_path / "f.html"), dump_dom=True)
    shown = _articles(dom)
    assert {kind for kind, _ in shown} == {"miss"}
    assert sorted(vid for _, vid in shown) == expected[:20] or len(expected) > 20
    assert f'data-matching="{len(expected)}"' in dom
    assert dom.count(f"miss: {reason}</span>") == min(len(expected), 20)

    nxt = "document.querySelector('[data-go=\"1\"]').click();"
    dom = run_chromium(_with_script(report, nxt, tmp_path / "p.html"), dump_dom=True)
    assert "page 2 of" in dom and "videos 21–40" in dom


@pytest.fixture(scope="module")
def mlflow_ui(evaluated):
    """``mlflow ui`` on 127.0.0.1 serving the demo store; yields (url, experiment id)."""
    root, outcomes = evaluated
    with mlflow_process("ui", root / "mlflow.db", root, []) as url:
        yield url, outcomes["baseline"].run.experiment_id


def test_mlflow_ui_compares_the_runs_by_recall_at_k(mlflow_ui) -> None:
    url, exp_id = mlflow_ui
    # A tall window keeps every chart in view (the chart view draws only those); the helper
    # waits until the recall_at_k chart has drawn.
    dom = chart_view(
        f"{url}/#/experiments/{exp_id}/runs?compareRunsMode=CHART", window=(1600, 6000)
    )
    assert re.search(r'title="recall_at_k"', dom), "no recall_at_k chart in the compare view"
    assert "baseline" in dom and "candidate" in dom
    assert 'title="mrr_at_10"' in dom


def test_mlflow_ui_shows_the_report_artifact(mlflow_ui, evaluated) -> None:
    url, exp_id = mlflow_ui
    run_id = evaluated[1]["candidate"].run.run_id
    with urllib.request.urlopen(
        f"{url}/get-artifact?path=report.html&run_uuid={run_id}", timeout=30
    ) as resp:
        served = resp.read().decode()
    assert 'id="report-data"' in served
    dom = rendered_dom(
        f"{url}/#/experiments/{exp_id}/runs/{run_id}/artifacts/report.html",
        selector="iframe",
    )
    assert "report.html" in dom
    assert "mlflow-html-iframe" in dom


@pytest.fixture(scope="module")
def named_versions(demo_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """poster-ranker v1 (baseline) and v2 (candidate) evaluated into one sqlite store."""
    root = tmp_path_factory.mktemp("models-tab")
    runs = {}
    for version, model in ((1, "baseline"), (2, "candidate")):
        cfg = compose_config(
            [
                f"data.experts={demo_files['experts']}",
                f"data.predictions={demo_files[model]}",
                f"mlflow.tracking_uri=sqlite:///{root / 'mlflow.db'}",
                "model.name=poster-ranker",
                f"model.version={version}",
                "plots=false",
                "report.html=false",
            ]
        )
        runs[version] = run_poster(cfg, root / model).run
    with mlflow_process("ui", root / "mlflow.db", root, []) as url:
        yield url, runs


def test_models_tab_lists_both_versions_with_their_metrics(named_versions) -> None:
    """The experiment's Models tab names each LoggedModel after model.name, not the flavour,
    each beside its evaluation run (metric columns are one click away under "Columns"); with
    VIDEO_EVAL_SNAPSHOTS=1 the page is saved as docs/images/mlflow_models_tab.png."""
    url, runs = named_versions
    exp_id = runs[1].experiment_id
    shot = Path(__file__).resolve().parents[2] / "docs" / "images" / "mlflow_models_tab.png"
    dom = rendered_dom(
        f"{url}/#/experiments/{exp_id}/models",
        selector="text=poster-ranker",
        screenshot=shot if os.environ.get("VIDEO_EVAL_SNAPSHOTS") else None,
    )
    assert dom.count("poster-ranker") >= 2, "the Models tab does not list both versions"
    assert "predictions_lookup" not in dom
    assert "poster-ranker-v1" in dom and "poster-ranker-v2" in dom  # their source runs
