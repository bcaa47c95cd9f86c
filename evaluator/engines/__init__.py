"""How the per-video work of an evaluation runs.

An engine takes validated inputs and settings and returns the core's result; the task around it
(`evaluator.tasks`) does the rest (statistics, report, record). `local` runs the pure core in
this process; `spark` runs it on Apache Spark executors (`evaluator.engines.spark`).
"""

from __future__ import annotations

import sys
from typing import Any

from evaluator.errors import InputError

ENGINES = ("local", "spark")


def engine_name(cfg: Any) -> str:
    """The configured engine (``engine.name``; no engine group = local).

    Raises:
        InputError: an engine that does not exist.
    """
    engine = getattr(cfg, "engine", None)
    name = "local" if engine is None else str(engine.name)
    if name not in ENGINES:
        raise InputError(f"config: engine={name} is not known; use engine=local or engine=spark.")
    return name


def keep_spark_out(cfg: Any) -> None:
    """With ``engine=local``, make ``import pyspark`` fail in this process from now on.

    Libraries import pyspark whenever it is installed (MLflow's schema types do), which costs
    start-up time and prints pyspark's warnings although no Spark is used. A pyspark already
    loaded (a notebook that uses Spark itself) is left alone; ``engine=spark`` (a later job of
    a multirun) lifts the block.
    """
    if engine_name(cfg) == "local":
        if "pyspark" not in sys.modules:
            sys.modules["pyspark"] = None  # type: ignore[assignment]  # import -> ImportError
    elif "pyspark" in sys.modules and sys.modules["pyspark"] is None:
        del sys.modules["pyspark"]
