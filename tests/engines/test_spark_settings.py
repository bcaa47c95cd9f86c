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
