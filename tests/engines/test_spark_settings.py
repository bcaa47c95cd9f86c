"""The settings a new Spark session gets, the message of a job whose JVM died, the refusals
before any Spark starts, and engine=local without pyspark (no Spark session needed)."""

from __future__ import annotations

import importlib.util

import pytest

from evaluator.core.partials import merge_partials
from evaluator.engines.spark_poster import merge_arriving
from evaluator.engines.spark_session import (
    CLASSIC_CONF,
    LOCAL_DRIVER_MEMORY,
    connect_address,
    is_connect_master,
    job_error,
    session_conf,
)
from evaluator.errors import InputError
from tests.engines.streamkit import assert_same, judged_units


def test_a_local_session_gets_a_driver_heap_the_user_can_override() -> None:
    assert session_conf("local[2]", {})["spark.driver.memory"] == LOCAL_DRIVER_MEMORY
    assert session_conf("local[*]", {"spark.driver.memory": "8g"})["spark.driver.memory"] == "8g"
    assert "spark.driver.memory" not in session_conf("yarn", {})  # the cluster's own setting


def test_a_jvm_that_died_while_collecting_says_to_raise_the_heap() -> None:
    exc = RuntimeError(
        "An error occurred while calling o600.collectToPython.\n: org.apache.spark.SparkException:"
        " Job aborted due to stage failure: Task 0 in stage 22.0 failed 1 times, most recent "
        "failure: An error occurred while calling o535.getResult."
    )
    message = str(job_error(exc, "scoring the videos"))
    assert message.startswith("engine=spark: scoring the videos: Job aborted due to stage failure")
    assert "in stage 22.0" in message and "spark.driver.memory" in message


def _video_eval_spark(
    tmp_path,
    env: dict[str, str],
    prelude: str = "",
    engine: tuple[str, ...] = ("engine=spark",),
    epilogue: str = "pass",
) -> tuple[int, str]:
    """``video-eval engine=spark`` (or ``engine``'s overrides) in a fresh process; (exit status,
    stderr). ``epilogue`` runs when the command returns or exits (before the command process
    ends itself in its last exit handler)."""
    import os
    import subprocess
    import sys

    import pandas as pd

    pd.DataFrame({"video_id": ["a"], "timestamp": [0.0]}).to_parquet(tmp_path / "e.parquet")
    pd.DataFrame({"video_id": ["a"], "timestamp": [0.5], "rank": [1]}).to_parquet(
        tmp_path / "p.parquet"
    )
    code = (
        f"{prelude}\nimport sys\n"
        f"sys.argv = ['video-eval', *{list(engine)!r}, 'data.experts=e.parquet',"
        " 'data.predictions=p.parquet', 'matching.min_cosine=null', 'plots=false',"
        " 'report.html=false', 'metrics.min_expert_frames=1',"
        " 'mlflow.tracking_uri=sqlite:///mlflow.db', 'hydra.run.dir=out']\n"
        f"from evaluator.cli import main\ntry:\n    main()\nfinally:\n    {epilogue}\n"
    )
    full = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "JAVA_HOME")}
    full.update(env)
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=full, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    return proc.returncode, proc.stderr


def test_java_missing_is_one_message_exit_2_and_no_run(tmp_path) -> None:
    code, err = _video_eval_spark(tmp_path, {"PATH": "/nonexistent"})
    assert code == 2, err
    assert "Traceback" not in err and "openjdk-17-jre-headless" in err
    assert not (tmp_path / "mlflow.db").exists()  # no run, not even a store


def test_pyspark_missing_is_one_message_exit_2_and_no_run(tmp_path) -> None:
    block = "import sys\nfor m in ('pyspark', 'pyspark.sql'):\n    sys.modules[m] = None"
    code, err = _video_eval_spark(tmp_path, {}, prelude=block)
    assert code == 2, err
    assert "Traceback" not in err and 'pip install -e ".[spark]"' in err
    assert not (tmp_path / "mlflow.db").exists()


def test_a_connect_session_gets_session_settings_only() -> None:
    conf = session_conf("sc://127.0.0.1:15002", {"spark.sql.shuffle.partitions": "8"})
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.sql.shuffle.partitions"] == "8"
    # JVM settings of a server this client does not start.
    assert not set(CLASSIC_CONF) & set(conf) and "spark.driver.memory" not in conf
    assert set(CLASSIC_CONF) <= set(session_conf("yarn", {}))


@pytest.mark.parametrize(
    ("master", "address"),
    [
        ("sc://127.0.0.1:15002", ("127.0.0.1", 15002)),
        (
            "SC://spark.example.com/;token=abc;x-databricks-cluster-id=1",
            ("spark.example.com", 15002),
        ),
        ("sc://[::1]:443/;use_ssl=true", ("::1", 443)),
    ],
)
def test_connect_urls(master: str, address: tuple[str, int]) -> None:
    assert is_connect_master(master)
    assert connect_address(master) == address


@pytest.mark.parametrize("master", ["sc://", "sc://host:port", "sc://:15002"])
def test_a_connect_url_without_host_or_with_a_bad_port_is_refused(master: str) -> None:
    with pytest.raises(InputError, match="sc://HOST:PORT"):
        connect_address(master)


def test_local_and_classic_masters_are_not_connect() -> None:
    for master in ("local[*]", "local-cluster[2,1,1024]", "spark://h:7077", "yarn", "k8s://x"):
        assert not is_connect_master(master)


@pytest.mark.parametrize("cap", [None, 0, 7])
def test_partials_merged_as_they_arrive_equal_one_merge(cap: int | None) -> None:
    """The driver merges the buckets' partials in batches as they arrive: the same partial as
    one merge of all of them, gallery cap included."""
    parts = judged_units(12, 11)
    once = merge_partials(parts, max_gallery_videos=cap)
    for batch in (1, 2, 5, 64):
        arriving = merge_arriving(
            iter(parts), max_gallery_videos=cap, empty=lambda: parts[0], batch=batch
        )
        assert_same(once, arriving, f"batch {batch}")


@pytest.mark.slow
def test_engine_local_never_imports_pyspark(tmp_path) -> None:
    """pyspark is installed here; engine=local loads none of it and prints none of its
    warnings (MLflow imports it whenever it can)."""
    loaded = (
        "print('pyspark loaded:', sorted(m for m, v in sys.modules.items()"
        " if m.split('.')[0] == 'pyspark' and v is not None)[:3], file=sys.stderr)"
    )
    code, err = _video_eval_spark(tmp_path, {}, engine=("engine=local",), epilogue=loaded)
    assert code == 0, err
    assert "pyspark loaded: []" in err
    assert "FutureWarning" not in err and "PySpark" not in err


@pytest.mark.slow
def test_no_connect_server_listening_is_one_line_exit_2_and_no_run(tmp_path) -> None:
    if importlib.util.find_spec("grpc") is None:
        pytest.skip('Spark Connect needs pip install -e ".[spark]"')
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    master = f"engine.master=sc://127.0.0.1:{port}"
    code, err = _video_eval_spark(tmp_path, {}, engine=("engine=spark", master))
    assert code == 2, err
    # MLflow's own store warm-up may log while the engine starts; the refusal is one line.
    lines = [line for line in err.splitlines() if " INFO mlflow." not in line and line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"no Spark Connect server answers at 127.0.0.1:{port}" in lines[0]
    assert _runs(tmp_path / "mlflow.db") == 0


def _runs(db) -> int:
    import sqlite3

    if not db.exists():
        return 0
    with sqlite3.connect(db) as con:
        return int(con.execute("select count(*) from runs").fetchone()[0])
