"""End to end on a real sqlite store: the calibration figures, the warning, ``matching.center``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from evaluator.config_checks import check_evaluate_config
from evaluator.errors import InputError
from evaluator.tasks.poster import run_poster
from evaluator.tasks.poster_similarity import CALIBRATION_METRICS
from tests.conftest import artifact_paths, compose_config, run_cli, sqlite_run

WARNING = "barely filters"


def _overrides(demo_files: dict[str, Path], db: Path, *extra: str) -> list[str]:
    return [
        f"data.experts={demo_files['experts']}",
        f"data.predictions={demo_files['baseline']}",
        f"mlflow.tracking_uri=sqlite:///{db}",
        "metrics.bootstrap.n_resamples=0",
        *extra,
    ]


def test_a_run_logs_the_figures_the_params_and_the_plot(
    demo_files, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "mlflow.db"
    # warn_rate 1.0: no rate exceeds it, so no warning.
    cfg = compose_config(_overrides(demo_files, db, "calibration.warn_rate=1.0"))
    with caplog.at_level(logging.WARNING, logger="evaluator"):
        outcome = run_poster(cfg, tmp_path / "out")
    client, run = sqlite_run(db, outcome.run.run_id)
    calibration = outcome.summary["calibration"]
    for name in CALIBRATION_METRICS:
        assert run.data.metrics[name] == pytest.approx(calibration[name]), name
    assert 0.0 <= run.data.metrics["cosine_false_match_rate"] <= 1.0
    # 120 videos of a few expert frames: fewer than 1M unrelated pairs, so all are computed.
    assert calibration["n_pairs"] == calibration["n_pairs_total"] > 0
    assert not calibration["sampled"]
    params = run.data.params
    assert params["matching.center"] == "off"
    assert params["calibration.max_pairs"] == "1000000"
    assert params["calibration.seed"] == "0"
    assert params["calibration.warn_rate"] == "1.0"
    arts = artifact_paths(client, run.info.run_id)
    assert {"plots/cosine_calibration.png", "report.html"} <= arts
    report = (tmp_path / "out" / "report.html").read_text()
    assert 'alt="cosine_calibration"' in report
    assert WARNING not in report and "warnings" not in outcome.summary
    assert not [r for r in caplog.records if WARNING in r.getMessage()]


def test_the_warning_above_warn_rate_and_centring(
    demo_files, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "mlflow.db"
    off = run_poster(compose_config(_overrides(demo_files, db)), tmp_path / "off")
    rate = off.summary["calibration"]["cosine_false_match_rate"]
    assert 0.0 < rate < 1.0
    # Exactly at the rate: no warning; just below it: the warning, with the q99.
    at = run_poster(
        compose_config(_overrides(demo_files, db, f"calibration.warn_rate={rate!r}")),
        tmp_path / "at",
    )
    assert "warnings" not in at.summary
    with caplog.at_level(logging.WARNING, logger="evaluator"):
        below = run_poster(
            compose_config(
                _overrides(demo_files, db, f"calibration.warn_rate={rate * (1 - 1e-9)!r}")
            ),
            tmp_path / "below",
        )
    (warning,) = below.summary["warnings"]
    q99 = below.summary["calibration"]["cosine_unrelated_q99"]
    assert WARNING in warning and f"matching.min_cosine={q99:.3f}" in warning
    assert any(WARNING in r.getMessage() for r in caplog.records)
    assert WARNING in (tmp_path / "below" / "report.html").read_text()

    on = run_poster(
        compose_config(_overrides(demo_files, db, "matching.center=experts")), tmp_path / "on"
    )
    _, run = sqlite_run(db, on.run.run_id)
    assert run.data.params["matching.center"] == "experts"
    assert on.summary["settings"]["center"] == "experts"
    assert on.summary["dataset_digest"] != off.summary["dataset_digest"]
    assert run.data.tags["dataset.digest"] == on.summary["dataset_digest"]
    assert on.summary["calibration"]["center"] == "experts"


def test_the_console_and_the_log_file_carry_the_warning(demo_files, tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    args = [
        f"data.experts={demo_files['experts']}",
        f"data.predictions={demo_files['baseline']}",
        f"mlflow.tracking_uri=sqlite:///{db}",
        "calibration.warn_rate=0",
        "plots=false",
        "report.html=false",
        "hydra.run.dir=out",
    ]
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert WARNING in proc.stdout + proc.stderr
    logs = list((tmp_path / "out").glob("*.log"))
    assert logs and WARNING in logs[0].read_text()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert WARNING in summary["warnings"][0]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("matching.center=mean", r"matching.center=mean is not known; allowed: off .* experts"),
        ("calibration.max_pairs=0", r"calibration.max_pairs=0 is out of range"),
        ("calibration.seed=-1", r"calibration.seed=-1 is out of range"),
        ("calibration.warn_rate=1.5", r"calibration.warn_rate=1.5 is out of range"),
    ],
)
def test_bad_settings_are_refused(demo_files, tmp_path: Path, override: str, message: str) -> None:
    cfg = compose_config(_overrides(demo_files, tmp_path / "db", override))
    with pytest.raises(InputError, match=message):
        check_evaluate_config(cfg)


def test_centring_on_spark_is_refused_at_the_edge(demo_files, tmp_path: Path) -> None:
    cfg = compose_config(
        _overrides(demo_files, tmp_path / "db", "engine=spark", "matching.center=experts")
    )
    with pytest.raises(InputError, match=r"matching\.center=experts is not supported with engine"):
        check_evaluate_config(cfg)
    proc = run_cli(
        [*_overrides(demo_files, tmp_path / "db", "matching.center=bogus"), "hydra.run.dir=o"],
        tmp_path,
    )
    assert proc.returncode == 2 and "matching.center=bogus is not known" in proc.stderr
