"""Spark MLlib's ALS with implicit preferences, on integer-indexed ratings (u, i, r)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


@dataclass(frozen=True)
class SparkAlsParams:
    """Spark's own names and meanings: `regularization` is λ before Spark scales it by each user's
    and item's count of positive ratings, `alpha` gives confidence 1 + α·|r| (docs/training.md
    maps them to implicit's)."""

    factors: int = 64
    iterations: int = 15
    regularization: float = 0.01
    alpha: float = 20.0
    seed: int = 7

    def as_dict(self) -> dict[str, float | int | str]:
        return {"engine": "spark", "factors": self.factors, "iterations": self.iterations,
                "regularization": self.regularization, "alpha": self.alpha, "seed": self.seed}


@dataclass(frozen=True)
class Factors:
    """Factor matrices in artifact row order (row = the dense index ids.py assigned)."""

    users: np.ndarray
    items: np.ndarray
    # Rows Spark returned no factor for (left at zero): ids with no positive rating.
    missing_users: int
    missing_items: int


def fit(ratings: DataFrame, params: SparkAlsParams, n_users: int, n_items: int) -> Factors:
    """Trains on (u, i, r) and brings both factor tables to the driver as dense float32 arrays."""
    from pyspark.ml.recommendation import ALS

    als = ALS(rank=params.factors, maxIter=params.iterations, regParam=params.regularization,
              alpha=params.alpha, implicitPrefs=True, seed=params.seed, nonnegative=False,
              userCol="u", itemCol="i", ratingCol="r", coldStartStrategy="drop")
    model = als.fit(ratings)
    users, mu = _dense(model.userFactors, n_users, params.factors)
    items, mi = _dense(model.itemFactors, n_items, params.factors)
    return Factors(users, items, mu, mi)


def _dense(factors: DataFrame, n: int, rank: int) -> tuple[np.ndarray, int]:
    """(n, rank) float32 with row id = Spark's id; rows Spark did not return stay zero."""
    out = np.zeros((n, rank), dtype=np.float32)
    present = np.zeros(n, dtype=bool)
    # Streamed partition by partition: the driver holds the output array and one partition.
    for row in factors.toLocalIterator(prefetchPartitions=True):
        out[row["id"]] = row["features"]
        present[row["id"]] = True
    return out, int(n - present.sum())
