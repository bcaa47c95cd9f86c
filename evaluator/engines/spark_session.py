"""The Spark session of ``engine=spark``: reused when one is active, else started and stopped.

pyspark is an optional extra (``pip install "video-evaluator[spark]"``) and needs a Java 17+
runtime; both are checked before anything else happens, so a machine without them gets one
message saying what to install (exit 2), never a py4j traceback. Inside a Spark application
that already has a session (a Databricks notebook or job, ``spark-submit``, a test fixture) that
session is used as it is and left running; otherwise one is built from ``engine.master`` and
``engine.conf`` and stopped when the evaluation ends.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from evaluator.errors import InputError, ServiceError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

MIN_JAVA = 17
INSTALL_SPARK = (
    'engine=spark needs pyspark, which is not installed: pip install "video-evaluator[spark]" '
    '(from a checkout: pip install -e ".[spark]"), or use engine=local.'
)
INSTALL_JAVA = (
    "engine=spark needs a Java {need}+ runtime for pyspark: {found}. Install one (Debian/Ubuntu: "
    "apt-get install openjdk-17-jre-headless) or point JAVA_HOME at it, or use engine=local."
)
# Settings every session this module starts gets unless engine.conf says otherwise.
DEFAULT_CONF = {
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
}


LOCAL_DRIVER_MEMORY = "4g"  # a local session's JVM heap unless engine.conf sets it


class SparkJobError(ServiceError):
    """A Spark job failed in the end (after Spark's own task retries).

    The message names the failing stage and its root error. It is a service failure (exit 3,
    docs/engines.md): nothing was recorded, and what to fix is the cluster or one of its
    settings; bad data found on an executor comes back as the `InputError` it is (exit 2).
    """


def _quiet_pandas_warning() -> None:
    # pyspark 4.3 warns on every pandas >= 3 conversion; what the engine uses is tested.
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )


def import_pyspark() -> Any:
    """The ``pyspark.sql`` module.

    Raises:
        InputError: pyspark is not installed (the message says what to install).
    """
    try:
        import pyspark.sql
    except ImportError:
        raise InputError(INSTALL_SPARK) from None
    _quiet_pandas_warning()
    return pyspark.sql


def _java_binary() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = os.path.join(home, "bin", "java")
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("java")


def check_java() -> None:
    """Refuse early when no Java runtime (or one older than 17) would start Spark.

    Raises:
        InputError: no ``java`` on PATH / under JAVA_HOME, or an old one.
    """
    java = _java_binary()
    if java is None:
        raise InputError(
            INSTALL_JAVA.format(need=MIN_JAVA, found="no java on PATH and JAVA_HOME is not set")
        )
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(INSTALL_JAVA.format(need=MIN_JAVA, found=f"{java} fails: {exc}")) from None
    text = out.stderr + out.stdout
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if match is None:
        raise InputError(
            INSTALL_JAVA.format(need=MIN_JAVA, found=f"{java} -version says {text.strip()[:80]!r}")
        )
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0" style
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise InputError(INSTALL_JAVA.format(need=MIN_JAVA, found=f"{java} is Java {major}"))


def active_session() -> SparkSession | None:
    """The session of the Spark application this process runs in, if there is one."""
    sql = import_pyspark()
    session = sql.SparkSession.getActiveSession()
    if session is None:
        # Python threads other than the one that built the session see no "active" one.
        session = sql.SparkSession._instantiatedSession
        if session is not None and session.sparkContext._jsc is None:
            session = None
    return session


def session_conf(master: str, conf: Mapping[str, Any]) -> dict[str, str]:
    """The settings a new session starts with: the defaults, then ``engine.conf``.

    On a local master the Python workers are this interpreter (so they import the same
    packages), unless ``spark.pyspark.python`` or ``PYSPARK_PYTHON`` says otherwise.
    """
    out = dict(DEFAULT_CONF)
    if master.startswith("local"):
        # Executors run inside the driver's JVM on a local master; Spark's 1g default heap is
        # too small for a few hundred thousand videos' outcomes (the JVM dies while collecting).
        out["spark.driver.memory"] = LOCAL_DRIVER_MEMORY
        if not os.environ.get("PYSPARK_PYTHON"):
            out["spark.pyspark.python"] = sys.executable
    out.update({str(k): str(v) for k, v in conf.items()})
    return out


def _local_python(master: str, conf: Mapping[str, str]) -> None:
    # pyspark starts its local Python workers from PYSPARK_PYTHON (the setting alone is not
    # read in local mode), so the workers import what this interpreter imports.
    if master.startswith("local") and "spark.pyspark.python" in conf:
        os.environ.setdefault("PYSPARK_PYTHON", conf["spark.pyspark.python"])


@contextmanager
def spark_session(master: str, conf: Mapping[str, Any]) -> Iterator[SparkSession]:
    """Yield the active session, or start one (``master``, ``conf``) and stop it afterwards.

    Args:
        master: the master URL (``local[*]``, ``spark://host:7077``, ``yarn``, ``k8s://...``).
        conf: Spark settings (``engine.conf``).

    Raises:
        InputError: pyspark or Java missing, or Spark cannot start (the message says why).
    """
    sql = import_pyspark()
    session = active_session()
    if session is not None:
        yield session
        return
    check_java()
    builder = sql.SparkSession.builder.master(master).appName("video-evaluator")
    settings = session_conf(master, conf)
    _local_python(master, settings)
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # py4j / JVM start-up failures have no common base class
        raise InputError(
            f"engine=spark: Spark did not start (engine.master={master}): {first_line(exc)}"
        ) from None
    # Task failures are reported by `job_error` in one message; the JVM's own stack traces
    # on stderr would only bury it.
    session.sparkContext.setLogLevel("FATAL")
    try:
        yield session
    finally:
        # A JVM that died (out of memory) cannot be stopped cleanly; the job's own error,
        # raised through here, is the one to report.
        with contextlib.suppress(Exception):
            session.stop()


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's text."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


_STAGE = re.compile(r"(Job aborted due to stage failure: [^\n]*?in stage [\d.]+[^\n:]*)")
_INPUT_ERROR = re.compile(r"evaluator\.errors\.InputError: (.*)")
_LAST_ERROR = re.compile(r"^(\w+(?:\.\w+)*(?:Error|Exception)\b.*)$", re.MULTILINE)


def job_error(exc: BaseException, what: str) -> InputError | SparkJobError:
    """Turn a failed Spark job into one readable error.

    An `InputError` raised on an executor (bad data found there) comes back as itself; any
    other failure names the failing stage and its root error.

    Args:
        exc: what pyspark raised (``PythonException``, ``Py4JJavaError``, ...).
        what: what the job was doing, for the message ("scoring the videos").
    """
    text = str(exc)
    found = _INPUT_ERROR.search(text)
    if found:
        return InputError(found.group(1).strip())
    stage = _STAGE.search(text)
    errors = _LAST_ERROR.findall(text)
    root = errors[-1].strip() if errors else first_line(exc)
    if "No module named 'evaluator'" in text:
        root += (
            " (the executors cannot import the evaluator: install video-evaluator on the "
            "cluster, e.g. a Databricks cluster library or spark-submit --py-files)"
        )
    if "getResult" in text or "Answer from Java side is empty" in text:
        root += (
            " (the Spark JVM stopped while collecting the per-video outcomes, usually out of "
            "memory: raise the driver's heap, e.g. '++engine.conf={spark.driver.memory: 8g}')"
        )
    where = stage.group(1) if stage else "the Spark job failed"
    return SparkJobError(f"engine=spark: {what}: {where}: {root}")
