"""One local[2] Spark session for every Spark test, started once per test session.

The evaluator finds it as the active session and reuses it (as it reuses a Databricks
notebook's), so each test pays for its jobs only, not for a JVM start.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("pyspark", reason='engine=spark needs pip install -e ".[spark]"')


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    from evaluator.engines.spark_session import check_java, session_conf

    check_java()
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master("local[2]").appName("video-evaluator-tests")
    conf = session_conf(
        "local[2]",
        {
            # Small test tables: few shuffle partitions keep the per-task overhead low.
            "spark.sql.shuffle.partitions": "4",
            "spark.default.parallelism": "2",
            "spark.ui.enabled": "false",
            "spark.driver.memory": "1g",
        },
    )
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
