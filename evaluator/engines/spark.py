"""The Spark engine (``engine=spark``): the same evaluation, with the per-video work on executors.

What runs where:

- driver: the config, the checks' verdicts, the per-video outcomes (a few numbers per video, no
  frame vectors), the statistics over videos (means, bootstrap, sweep), the report, the result
  files and the MLflow record: the code of ``engine=local``.
- executors: reading and checking the tables (`evaluator.engines.spark_inputs`), embedding frames
  (`evaluator.engines.spark_embed`) and scoring the videos with the pure core
  (`evaluator.engines.spark_poster`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evaluator.engines.spark_inputs import episode_arrow
from evaluator.engines.spark_session import job_error, spark_session
from evaluator.io.episode import CARRIED_COLUMNS, REQUIRED_COLUMNS, EpisodeTable, episode_table


def spark_episode_table(engine: Any, source: str, *, group_by: str | None) -> EpisodeTable:
    """The episode table read by Spark, checked as the local engine checks a file.

    Args:
        engine: the ``engine`` config group (``master``, ``conf``).
        source: ``data.episodes``: a path, folder of part files, URI or ``table:NAME``.
        group_by: ``episode.group_by``.

    Raises:
        InputError: pyspark / Java missing, an unreadable source, or bad rows.
    """
    columns = (*REQUIRED_COLUMNS, *CARRIED_COLUMNS, *([group_by] if group_by else []))
    with spark_session(str(engine.master), engine.conf) as spark:
        try:
            table = episode_arrow(spark, source, columns)
        except Exception as exc:
            if isinstance(exc, ValueError):  # InputError
                raise
            raise job_error(exc, f"reading {source}") from None
    return episode_table(Path(source), table, group_by=group_by)
