"""The Spark sessions of the Spark tests: a classic local[2] one and a Spark Connect client.

Every Spark test runs twice, through the ``spark`` fixture's two values:

- ``classic``: one local[2] session in this process;
- ``connect``: a client of a real Spark Connect server (pyspark's own
  ``sbin/start-connect-server.sh``, master local[2], on 127.0.0.1), started once per test
  session by ``connect_server`` and stopped by its pid at the end.

The evaluator finds the session as the active one and reuses it (as it reuses a Databricks
notebook's), so each test pays for its jobs only. A classic session and a Connect client cannot
live in one Python process at the same time (pyspark refuses the second), so the fixture is
session-scoped and parametrised: pytest runs every classic test, stops that session, then runs
every Connect test.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import load_script

pytest.importorskip("pyspark", reason='engine=spark needs pip install -e ".[spark]"')

SESSIONS = ("classic", "connect")


@pytest.fixture(scope="session")
def connect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Spark Connect server (``.url``: ``sc://127.0.0.1:PORT``) for the whole test session."""
    pytest.importorskip("grpc", reason='Spark Connect needs pip install -e ".[spark]"')
    from evaluator.engines.spark_session import check_java

    check_java()
    servers = load_script("connect_server")
    folder = tmp_path_factory.mktemp("connect-server")
    server = servers.start(folder)
    yield server
    servers.stop(folder)


def _classic() -> Any:
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
            "spark.log.level": "ERROR",
        },
    )
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


@pytest.fixture(scope="session", params=SESSIONS)
def spark(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The active session of the test: classic local[2], or a Connect client."""
    if request.param == "classic":
        session = _classic()
    else:
        from pyspark.sql import SparkSession

        server = request.getfixturevalue("connect_server")
        session = SparkSession.builder.remote(server.url).getOrCreate()
    yield session
    session.stop()
    # The Connect builder marks the process as a Connect client; later classic sessions (and
    # child processes, which inherit the environment) must not be.
    os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)


@pytest.fixture
def spark_kind(spark: Any) -> str:
    """``classic`` or ``connect``: the kind of the test's session."""
    from evaluator.engines.spark_session import is_connect

    return "connect" if is_connect(spark) else "classic"
