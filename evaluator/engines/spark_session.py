"""The Spark session of ``engine=spark``: reused when one is active, else started and stopped.

Two kinds of session: a classic one (master ``local[*]``, ``spark://``, ``yarn``, ``k8s://``:
this process drives a JVM through py4j) and a Spark Connect one (master ``sc://HOST:PORT``: this
process is a gRPC client of a remote server, as on Databricks serverless compute). The engine
uses only what both offer: DataFrames, the session's conf and artifacts; never the
``SparkContext`` of a Connect session (it has none).

pyspark is an optional extra (``pip install "video-evaluator[spark]"``, which brings the Connect
client's libraries too); a classic master also needs a Java 17+ runtime. Both are checked before
anything else happens, so a machine without them gets one message saying what to install
(exit 2), never a py4j traceback; a Connect server that does not answer gets one line too.
Inside a Spark application that already has a session (a Databricks notebook or job,
``spark-submit``, a test fixture), classic or Connect, that session is used as it is and left
running; otherwise one is built from ``engine.master`` and ``engine.conf`` and stopped when the
evaluation ends. Before any work, a tiny job checks that the executors import this version of
the evaluator (`evaluator.engines.spark_package`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

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
INSTALL_CONNECT = (
    "engine.master={master} is a Spark Connect server, and the Spark Connect client cannot be "
    'loaded ({error}): pip install "video-evaluator[spark]" (it brings pyspark[connect]: '
    "grpcio, grpcio-status, googleapis-common-protos, zstandard)."
)
CONNECT_PREFIX = "sc://"
CONNECT_PORT = 15002  # Spark Connect's default port
CONNECT_TIMEOUT_S = 10.0
CONNECT_MODE = "SPARK_CONNECT_MODE_ENABLED"
# Settings every session this module starts gets unless engine.conf says otherwise (a Connect
# session gets them as session settings).
DEFAULT_CONF = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
}
# Settings of the JVM this process starts: classic sessions only (a Connect server's are its
# operator's). Task failures are reported by `job_error` in one message; the JVM's own stack
# traces and progress bars on stderr would only bury it.
CLASSIC_CONF = {"spark.log.level": "FATAL", "spark.ui.showConsoleProgress": "false"}


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


def is_connect_master(master: str) -> bool:
    """Whether a master URL names a Spark Connect server (``sc://HOST:PORT[/;params]``)."""
    return master.strip().lower().startswith(CONNECT_PREFIX)


def is_connect(spark: Any) -> bool:
    """Whether a session is a Spark Connect client (no SparkContext, no py4j)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def _connect_session_class() -> Any | None:
    try:
        from pyspark.sql.connect.session import SparkSession as ConnectSession
    except ImportError:  # the Connect client's libraries (grpcio, ...) are not installed
        return None
    return ConnectSession


def active_session() -> SparkSession | None:
    """The session of the Spark application this process runs in, if there is one.

    A Connect session (a Databricks notebook on serverless compute) counts as one; a classic
    one is found from other threads too, without asking a Connect client for its JVM.
    """
    sql = import_pyspark()
    session = sql.SparkSession.getActiveSession()
    if session is not None:
        return session
    if "pyspark.sql.connect.session" in sys.modules:
        connect = _connect_session_class()
        if connect is not None:
            found = connect.getActiveSession() or connect._get_default_session()
            if found is not None:
                return found
    # Python threads other than the one that built a classic session see no "active" one.
    session = sql.SparkSession._instantiatedSession
    if session is not None and not is_connect(session) and session.sparkContext._jsc is None:
        session = None
    return session


def parallelism(spark: Any) -> int:
    """How many tasks the session runs at once, from what the session offers.

    Classic: the SparkContext's default parallelism. Connect (no SparkContext): the session's
    ``spark.default.parallelism``, else ``spark.sql.shuffle.partitions``, else 200 (Spark's
    default; Databricks' ``auto`` is not a number).
    """
    if not is_connect(spark):
        return int(spark.sparkContext.defaultParallelism)
    for key in ("spark.default.parallelism", "spark.sql.shuffle.partitions"):
        value = spark.conf.get(key, None)
        if value is not None and str(value).strip().isdigit():
            return max(1, int(str(value).strip()))
    return 200


def session_conf(master: str, conf: Mapping[str, Any]) -> dict[str, str]:
    """The settings a new session starts with: the defaults, then ``engine.conf``.

    On a local master the Python workers are this interpreter (so they import the same
    packages), unless ``spark.pyspark.python`` or ``PYSPARK_PYTHON`` says otherwise.
    """
    out = dict(DEFAULT_CONF)
    if not is_connect_master(master):
        out.update(CLASSIC_CONF)
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


def connect_address(master: str) -> tuple[str, int]:
    """(host, port) of an ``sc://HOST[:PORT][/;params]`` URL (port 15002 when not given).

    >>> connect_address("sc://127.0.0.1:15002/;user_id=me")
    ('127.0.0.1', 15002)
    >>> connect_address("sc://spark.example.com")
    ('spark.example.com', 15002)

    Raises:
        InputError: no host, or a port that is not a number.
    """
    parts = urlsplit(master.strip())
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host:
        raise InputError(
            f"engine.master={master}: a Spark Connect URL is sc://HOST:PORT (e.g. "
            f"sc://127.0.0.1:{CONNECT_PORT}), optionally followed by /;name=value parameters."
        )
    return host, port or CONNECT_PORT


def _check_listening(master: str) -> None:
    # The Connect client retries an unreachable server for minutes; one TCP connection says
    # at once whether anything listens there.
    host, port = connect_address(master)
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise InputError(
            f"engine=spark: no Spark Connect server answers at {host}:{port} "
            f"(engine.master={master}): {exc.strerror or exc}. Start the server (or the "
            f"cluster), or fix the host and port."
        ) from None


def _connect_builder(master: str, conf: Mapping[str, Any]) -> Any:
    connect = _connect_session_class()
    if connect is None:
        try:
            import pyspark.sql.connect.session  # noqa: F401 (for the error's text)
        except ImportError as exc:
            error = first_line(exc)
        else:
            error = "unknown"
        raise InputError(INSTALL_CONNECT.format(master=master, error=error))
    _check_listening(master)
    builder = connect.builder.remote(master)
    for key, value in session_conf(master, conf).items():
        builder = builder.config(key, value)
    return builder


def _classic_builder(sql: Any, master: str, conf: Mapping[str, Any]) -> Any:
    check_java()
    builder = sql.SparkSession.builder.master(master).appName("video-evaluator")
    settings = session_conf(master, conf)
    _local_python(master, settings)
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder


@contextmanager
def spark_session(master: str, conf: Mapping[str, Any]) -> Iterator[SparkSession]:
    """Yield the active session, or start one (``master``, ``conf``) and stop it afterwards.

    The engine checks the executors inside it (`evaluator.engines.spark_package.evaluator_session`).

    Args:
        master: the master URL (``local[*]``, ``spark://host:7077``, ``yarn``, ``k8s://...``,
            or ``sc://host:15002`` for a Spark Connect server).
        conf: Spark settings (``engine.conf``).

    Raises:
        InputError: pyspark, the Connect client or Java missing, Spark cannot start or the
            server does not answer (the message says why).
    """
    sql = import_pyspark()
    session = active_session()
    if session is not None:
        with _connect_mode(is_connect(session)):
            yield session
        return
    connect = is_connect_master(master)
    builder = _connect_builder(master, conf) if connect else _classic_builder(sql, master, conf)
    with _connect_mode(connect):
        try:
            session = builder.getOrCreate()
        except Exception as exc:  # py4j / JVM / gRPC start-up failures: no common base class
            raise InputError(
                f"engine=spark: Spark did not start (engine.master={master}): {first_line(exc)}"
            ) from None
        try:
            yield session
        finally:
            # A JVM that died (out of memory) cannot be stopped cleanly; the job's own error,
            # raised through here, is the one to report. Stopping a Connect client ends its
            # session on the server (its artifacts included), not the server.
            with contextlib.suppress(Exception):
                session.stop()


@contextmanager
def _connect_mode(connect: bool) -> Iterator[None]:
    # pyspark's column functions (F.lit, F.col, ...) build Connect expressions only while this
    # variable is set; pyspark sets it for sessions built by pyspark.sql.SparkSession.builder,
    # not for every way a Connect session comes to exist.
    if not connect or CONNECT_MODE in os.environ:
        yield
        return
    os.environ[CONNECT_MODE] = "1"
    try:
        yield
    finally:
        os.environ.pop(CONNECT_MODE, None)


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
            "cluster, e.g. a Databricks cluster library, or set engine.ship_package=true)"
        )
    if "getResult" in text or "Answer from Java side is empty" in text:
        root += (
            " (the Spark JVM stopped while collecting the per-video outcomes, usually out of "
            "memory: raise the driver's heap, e.g. '++engine.conf={spark.driver.memory: 8g}')"
        )
    where = stage.group(1) if stage else "the Spark job failed"
    return SparkJobError(f"engine=spark: {what}: {where}: {root}")
