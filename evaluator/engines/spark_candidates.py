"""``engine=spark``: the frames that can matter, found on the executors before embedding.

The same rule as `evaluator.core.candidates.frames_to_embed`, written as Spark joins: model
frames within the first ``k_max`` (by rank, or by score then time then input order) of videos
that can be eligible, expert frames of those videos, and the pairs between them within the
largest time tolerance in use; plus expert rows that agree on (video, time, other columns) with
a row showing another frame (their duplicate status depends on their vectors). A frame is
its image path, or its video path and time, so every row showing a needed frame gets its vector.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evaluator.engines.spark_inputs import SparkPosterTable

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def needed_frames(
    experts: SparkPosterTable,
    predictions: SparkPosterTable,
    *,
    k_max: int,
    min_expert_frames: int,
    window_s: float,
    keep_all_experts: bool = False,
) -> tuple[DataFrame, DataFrame]:
    """The distinct frames of each table that need a vector, as DataFrames of the frame keys.

    Args:
        experts / predictions: the checked tables with their image column.
        k_max / min_expert_frames / window_s / keep_all_experts: as in
            `evaluator.core.candidates.frames_to_embed`.

    Returns:
        (expert frames, model frames): the image column (and ``timestamp`` for videos).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    e_col, m_col = experts.image_column, predictions.image_column
    assert e_col is not None and m_col is not None
    e_keys = [e_col] if e_col == "image" else [e_col, "timestamp"]
    m_keys = [m_col] if m_col == "image" else [m_col, "timestamp"]
    ef = experts.frame
    key = F.col("_key") if "_key" in ef.columns else F.lit("")
    ident = ef.select(
        "video_id", "timestamp", key.alias("_k"), *[F.col(c).alias(f"_f_{c}") for c in e_keys]
    )
    kept = ident.distinct()
    group = Window.partitionBy("video_id", "timestamp", "_k")
    kept = kept.withColumn("_n_same", F.count(F.lit(1)).over(group))
    maybe = (
        kept.groupBy("video_id")
        .agg(F.count(F.lit(1)).alias("_n"))
        .where(F.col("_n") >= min_expert_frames)
        .select("video_id")
    )
    pf = predictions.frame
    order = (
        [F.col("rank").asc()]
        if "rank" in pf.columns
        else [F.col("score").desc(), F.col("timestamp").asc()]
    )
    order += [F.col(c).asc() for c in ("_file", "_row") if c in pf.columns]
    position = F.row_number().over(Window.partitionBy("video_id").orderBy(*order))
    considered = (
        pf.withColumn("_pos", position)
        .where(F.col("_pos") <= k_max)
        .join(maybe, "video_id", "left_semi")
        .select(
            "video_id",
            F.col("timestamp").alias("_t_m"),
            *[F.col(c).alias(f"_m_{c}") for c in m_keys],
        )
    )
    candidates = kept.join(maybe, "video_id", "left_semi")
    pairs = considered.join(candidates, "video_id").where(
        F.abs(F.col("_t_m") - F.col("timestamp")) <= F.lit(float(window_s))
    )
    e_cols = [F.col(f"_f_{c}").alias(c) for c in e_keys]
    expert_parts = [
        pairs.select(*e_cols),
        kept.where(F.col("_n_same") > 1).select(*e_cols),
    ]
    if keep_all_experts:
        expert_parts.append(candidates.select(*e_cols))
    needed_e = expert_parts[0]
    for part in expert_parts[1:]:
        needed_e = needed_e.unionByName(part)
    needed_m = pairs.select(*[F.col(f"_m_{c}").alias(c) for c in m_keys]).distinct()
    return needed_e.distinct(), needed_m
