"""What Spark Connect and the executors' evaluator add: a session built from ``sc://``, the
package shipped by the engine, and the one-message refusals of executors without it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import evaluator
from evaluator.engines.spark_package import check_executors, executor_evaluators, ship_package
from evaluator.errors import InputError
from tests.spark.test_spark_poster import random_tables, run

pytestmark = pytest.mark.spark


def _tables(tmp_path: Path) -> tuple[Path, Path]:
    e, p = random_tables(5)
    ep, pp = tmp_path / "e.parquet", tmp_path / "p.parquet"
    e.to_parquet(ep, index=False)
    p.to_parquet(pp, index=False)
    return ep, pp


def _video_eval(
    tmp_path: Path, *overrides: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``video-eval engine=spark`` in a fresh process (no session of the tests': it builds its
    own from ``engine.master``)."""
    full = {k: v for k, v in os.environ.items() if k != "SPARK_CONNECT_MODE_ENABLED"}
    full.update(env or {})
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "evaluator",
            "engine=spark",
            "data.experts=e.parquet",
            "data.predictions=p.parquet",
            "metrics.bootstrap.n_resamples=200",
            "plots=false",
            "report.html=false",
            f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
            "hydra.run.dir=out",
            *overrides,
        ],
        cwd=tmp_path,
        env=full,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _assert_summary_equals_local(tmp_path: Path) -> None:
    local = run(
        tmp_path / "e.parquet",
        tmp_path / "p.parquet",
        tmp_path,
        "local",
        "plots=false",
        "report.html=false",
    )
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["metrics"] == json.loads(json.dumps(local.summary["metrics"]))
    assert summary["dataset_digest"] == local.summary["dataset_digest"]
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "out" / "match_table.parquet"),
        pd.read_parquet(local.output_dir / "match_table.parquet"),
    )


@pytest.mark.slow
def test_video_eval_builds_a_connect_session_ships_the_package_and_equals_local(
    connect_server: Any, tmp_path: Path
) -> None:
    _tables(tmp_path)
    proc = _video_eval(tmp_path, f"engine.master={connect_server.url}", "engine.ship_package=true")
    assert proc.returncode == 0, proc.stderr
    _assert_summary_equals_local(tmp_path)


def _worker_python_without_evaluator(folder: Path) -> Path:
    """A Python whose site has this one's libraries (pyspark, pandas, ...) but not the
    evaluator (its editable install is a .pth hook of this environment only)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    site = next((folder / "lib").glob("python*/site-packages"))
    paths = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (site / "libraries.pth").write_text("\n".join(paths) + "\n")
    python = folder / "bin" / "python"
    probe = subprocess.run(
        [str(python), "-c", "import pyspark, pandas\ntry:\n import evaluator\nexcept ImportError:"
         "\n print('no evaluator')"],
        capture_output=True, text=True, check=True, cwd=folder,
    )  # fmt: skip
    assert probe.stdout.strip() == "no evaluator"
    return python


@pytest.mark.slow
def test_classic_executors_without_the_package_are_refused_and_shipping_fixes_it(
    tmp_path: Path,
) -> None:
    """A classic local[1] session whose Python workers lack the evaluator: one message, exit 2;
    with engine.ship_package=true the same workers import the shipped zip."""
    _tables(tmp_path)
    python = _worker_python_without_evaluator(tmp_path / "worker-venv")
    env = {"PYSPARK_PYTHON": str(python)}
    refused = _video_eval(tmp_path, "engine.master='local[1]'", env=env)
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr
    assert "the executors cannot import the evaluator (ModuleNotFoundError" in refused.stderr
    assert "engine.ship_package=true" in refused.stderr
    shipped = _video_eval(tmp_path, "engine.master='local[1]'", "engine.ship_package=true", env=env)
    assert shipped.returncode == 0, shipped.stderr
    _assert_summary_equals_local(tmp_path)


def test_connect_executors_with_another_version_are_refused(
    spark: Any, spark_kind: str, connect_server: Any, tmp_path: Path
) -> None:
    """A session whose executors import an older evaluator (a stale cluster library, here a
    session artifact) is refused; shipping this client's package to a session works."""
    if spark_kind != "connect":
        pytest.skip("session artifacts are Spark Connect's (classic: the subprocess test)")
    from pyspark.sql.connect.session import SparkSession

    old = tmp_path / "old" / "evaluator"
    old.mkdir(parents=True)
    (old / "__init__.py").write_text('__version__ = "0.0.1"\n')
    stale = tmp_path / "stale_evaluator.zip"
    with zipfile.ZipFile(stale, "w") as archive:
        archive.write(old / "__init__.py", "evaluator/__init__.py")
    builder = SparkSession.builder.remote(connect_server.url)
    other = builder.create()
    try:
        other.addArtifacts(str(stale), pyfile=True)
        with pytest.raises(InputError, match=r"executors import video-evaluator 0\.0\.1 \(.*\)"):
            check_executors(other)
    finally:
        other.stop()
    shipped = builder.create()
    try:
        name = ship_package(shipped)
        check_executors(shipped)
        [(version, location, error)] = executor_evaluators(shipped)
        assert (version, error) == (evaluator.__version__, "")
        assert f"{name}/evaluator/__init__.py" in location
    finally:
        shipped.stop()
    # Sessions of their own: the test's session still imports the installed evaluator.
    [(_, location, _)] = executor_evaluators(spark)
    assert ".zip" not in location
