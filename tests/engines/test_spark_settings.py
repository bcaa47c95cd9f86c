"""The settings a new Spark session gets, and the message of a job whose JVM died (no Spark
needed: these are the pure parts of `evaluator.engines.spark_session`)."""

from __future__ import annotations

from evaluator.engines.spark_session import LOCAL_DRIVER_MEMORY, job_error, session_conf


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


def _video_eval_spark(tmp_path, env: dict[str, str], prelude: str = "") -> tuple[int, str]:
    """``video-eval engine=spark`` in a fresh process; (exit status, stderr)."""
    import os
    import subprocess
    import sys

    import pandas as pd

    pd.DataFrame({"video_id": ["a"], "timestamp": [0.0]}).to_parquet(tmp_path / "e.parquet")
    code = (
        f"{prelude}\nimport sys\n"
        "sys.argv = ['video-eval', 'engine=spark', 'data.experts=e.parquet',"
        " 'data.predictions=e.parquet', 'matching.min_cosine=null',"
        " 'mlflow.tracking_uri=sqlite:///mlflow.db', 'hydra.run.dir=out']\n"
        "from evaluator.cli import main\nmain()\n"
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
