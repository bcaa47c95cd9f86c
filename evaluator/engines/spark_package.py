"""The evaluator on the executors of ``engine=spark``: shipped there on request, always checked.

The executors run the evaluator's own code (the checks, the embedder, the pure core), so they
must import ``evaluator``, in the client's version. Ways to get it there (docs/engines.md):
a cluster library or ``%pip install`` in a notebook, ``spark-submit --py-files``, or
``engine.ship_package=true``: the engine zips the ``evaluator`` package this process imports and
adds it to the session (``addArtifacts(..., pyfile=True)`` on Spark Connect, where it is
visible to that session only; ``SparkContext.addPyFile`` on a classic session). Its
dependencies (numpy, pandas, pyarrow; torch for image embedders) must be on the cluster, as
they are on Databricks runtimes.

Before any work a tiny job asks the executors which evaluator they import; an executor that
cannot import it, or imports another version, stops the evaluation with one message (exit 2)
instead of a failure deep inside a stage.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

import evaluator
from evaluator.engines.spark_session import is_connect, job_error, parallelism, spark_session
from evaluator.errors import InputError

PROBE_SCHEMA = "version string, location string, error string"
MAX_PROBE_TASKS = 32  # enough tasks to reach every executor of a usual cluster
HOW_TO_INSTALL = (
    "install video-evaluator {version} where the executors run (a cluster library, %pip "
    "install in the notebook, spark-submit --py-files), or set engine.ship_package=true to "
    "send this client's package with the job (docs/engines.md)"
)


def package_zip(folder: Path) -> Path:
    """Zip the ``evaluator`` package this process imports into ``folder``.

    The name carries the version and a hash of the content, so a changed package is a new
    artifact, never a clash with one a session already has.

    Returns:
        The zip (``evaluator/...`` at its root; no ``__pycache__``).
    """
    root = Path(evaluator.__file__).resolve().parent
    files = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    out = folder / f"video_evaluator-{evaluator.__version__}-{digest.hexdigest()[:12]}.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, Path("evaluator") / path.relative_to(root))
    return out


def ship_package(spark: Any) -> str:
    """Add the zipped ``evaluator`` package to the session's Python path on the executors.

    Returns:
        The zip's file name.
    """
    if is_connect(spark):
        with tempfile.TemporaryDirectory(prefix="video-evaluator-ship-") as tmp:
            path = package_zip(Path(tmp))
            spark.addArtifacts(str(path), pyfile=True)  # uploaded now
            return path.name
    # A classic session's executors fetch the file from the driver when their tasks start, so
    # it stays until this process ends.
    folder = Path(tempfile.mkdtemp(prefix="video-evaluator-ship-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = package_zip(folder)
    spark.sparkContext.addPyFile(str(path))
    return path.name


def _probe_function() -> Any:
    # A nested function is pickled by value: the executor runs it even when it cannot import
    # the evaluator (a function of this module would need the module to be unpickled).
    def probe(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for _ in batches:
            pass
        try:
            import evaluator as found

            row = (str(getattr(found, "__version__", "?")), str(found.__file__), "")
        except Exception as exc:
            row = ("", "", f"{type(exc).__name__}: {exc}")
        yield pd.DataFrame([row], columns=["version", "location", "error"])

    return probe


def executor_evaluators(spark: Any) -> list[tuple[str, str, str]]:
    """What the executors import as ``evaluator``: distinct (version, location, error) rows.

    One tiny task per partition, up to MAX_PROBE_TASKS partitions.
    """
    tasks = max(1, min(parallelism(spark), MAX_PROBE_TASKS))
    frame = spark.range(0, tasks, 1, tasks).mapInPandas(_probe_function(), PROBE_SCHEMA)
    rows = frame.distinct().collect()
    return sorted((r["version"], r["location"], r["error"]) for r in rows)


def check_executors(spark: Any) -> None:
    """Refuse when an executor cannot import the evaluator or imports another version.

    Raises:
        InputError: the executors' import error or version, and what to do about it.
    """
    version = evaluator.__version__
    try:
        found = executor_evaluators(spark)
    except Exception as exc:  # what the probe job raised: py4j / Connect errors
        raise job_error(exc, "checking the executors") from None
    help_ = HOW_TO_INSTALL.format(version=version)
    errors = sorted({error for _, _, error in found if error})
    if errors:
        raise InputError(
            f"engine=spark: the executors cannot import the evaluator ({errors[0]}): {help_}."
        )
    other = [(v, where) for v, where, _ in found if v != version]
    if other:
        v, where = other[0]
        raise InputError(
            f"engine=spark: the executors import video-evaluator {v} ({where}), this client is "
            f"{version}: {help_}."
        )


def prepare_executors(spark: Any, *, ship: bool) -> None:
    """Ship the package when asked (``engine.ship_package``), then check the executors.

    Raises:
        InputError: see `check_executors`.
    """
    if ship:
        ship_package(spark)
    check_executors(spark)


@contextmanager
def evaluator_session(
    master: str, conf: Mapping[str, Any], *, ship_package: bool = False
) -> Iterator[Any]:
    """`evaluator.engines.spark_session.spark_session` with its executors checked first.

    The executors must import this version of the evaluator, shipped to them first with
    ``ship_package`` (``engine.ship_package``).

    Raises:
        InputError: see `spark_session`, or executors without this evaluator (the message says
            why).
    """
    with spark_session(master, conf) as spark:
        prepare_executors(spark, ship=ship_package)
        yield spark
