"""The hold-out split on the cluster, with the one-machine split's rules (training/split.py):
users with at least `min_items` items (and at least 2) hide floor(fraction x n) of them, at least
one and never all; the hidden ones are chosen by a seeded hash of (user, item), so a re-run with
the same seed hides the same pairs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reco_sidecar.common.errors import InvalidArgument

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def flag_test(ratings: DataFrame, fraction: float, *, seed: int, min_items: int) -> DataFrame:
    """ratings with a boolean column `test`."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not 0.0 < fraction < 1.0:
        raise InvalidArgument(f"hold-out fraction must be between 0 and 1, got {fraction}", field="holdout")
    per_user = Window.partitionBy("u")
    ranked = Window.partitionBy("u").orderBy(F.xxhash64(F.col("u"), F.col("i"), F.lit(seed)), F.col("i"))
    n = F.count("*").over(per_user)
    hold = F.when(n >= max(2, min_items),
                  F.least(F.greatest(F.floor(F.lit(fraction) * n), F.lit(1)), n - 1)).otherwise(F.lit(0))
    return ratings.withColumn("test", F.row_number().over(ranked) <= hold)
