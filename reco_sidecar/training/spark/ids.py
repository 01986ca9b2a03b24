"""Dense integer ids for Spark's ALS (which takes int user and item columns), assigned on the
cluster: the distinct ids are range-sorted, each partition counts its rows, and a row's index is
its partition's offset plus its place in the partition. Only the per-partition counts (one
number per partition) reach the driver, never the ids themselves.

Rows are numbered in id order, as the one-machine trainer numbers rows read from the database,
so the same data gives the same artifact rows either way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def index(ids: DataFrame, column: str, out: str) -> DataFrame:
    """(column, out) with out = 0..n-1 in ascending order of column, checkpointed.

    The sorted frame is checkpointed before it is numbered: a range sort samples its input to
    place partition boundaries, and a recomputation that sampled differently would number rows
    differently in the two passes (counting, then numbering).
    """
    from pyspark.sql import functions as F

    # localCheckpoint: truncates the lineage without a shared checkpoint directory; a lost
    # executor then fails the run rather than renumbering silently.
    ordered = ids.select(column).distinct().orderBy(column).localCheckpoint(eager=True)
    tagged = ordered.select(column, F.spark_partition_id().alias("pid"),
                            F.monotonically_increasing_id().alias("mono"))
    counts = sorted((int(r["pid"]), int(r["n"])) for r in tagged.groupBy("pid").agg(F.count("*").alias("n"))
                    .collect())
    offsets, total = [], 0
    for pid, n in counts:
        offsets.append((pid, total))
        total += n
    if total >= 2**31:
        raise ValueError(f"{total} distinct values of {column}: Spark's ALS takes int ids")
    spark = ids.sparkSession
    offset_df = spark.createDataFrame(offsets, "pid int, offset long")
    # monotonically_increasing_id puts the partition id in the upper 31 bits and the row's
    # place in the partition in the lower 33.
    return (tagged.join(F.broadcast(offset_df), "pid")
            .select(column, (F.col("offset") + (F.col("mono") - F.shiftleft(F.col("pid").cast("long"), 33)))
                    .cast("int").alias(out)))
