"""`train --engine spark` end to end: read, index, (evaluate), train, export, write atomically.

As in the one-machine pipeline (training/pipeline.py), the split only estimates quality; the
published model is trained on all the data. Writing the version and publishing it to a model
store are the one-machine pipeline's own functions, so a Spark-trained version is the same kind
of artifact in every respect but its manifest's `training.engine` and `fold_in.objective`.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reco_sidecar.artifact.writer import write_version
from reco_sidecar.common import logs
from reco_sidecar.common.errors import InvalidArgument
from reco_sidecar.engine.eventtypes import EventType
from reco_sidecar.engine.objective import SPARK, Objective
from reco_sidecar.training import pipeline
from reco_sidecar.training.evaluate import evaluate
from reco_sidecar.training.interactions import Interactions
from reco_sidecar.training.spark import collect, ids
from reco_sidecar.training.spark.als import SparkAlsParams, fit
from reco_sidecar.training.spark.split import flag_test
from reco_sidecar.training.split import Split

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logs.get(__name__)


@dataclass(frozen=True)
class Indexed:
    ratings: DataFrame  # u int, i int, r float; cached
    user_ids: list[str]
    item_ids: list[str]


def index(pairs: DataFrame) -> Indexed:
    """Integer rows for users and items (assigned on the cluster), and the ids in row order."""
    from pyspark.sql import functions as F

    users = ids.index(pairs, "user_id", "u")
    items = ids.index(pairs, "item_id", "i")
    ratings = (pairs.join(users, "user_id").join(items, "item_id")
               .select("u", "i", F.col("weight").cast("float").alias("r")).cache())
    n_users, n_items = users.count(), items.count()
    if n_users == 0 or ratings.isEmpty():
        raise InvalidArgument("no interactions to train on", field="interactions")
    return Indexed(ratings, collect.ids_in_order(users, "user_id", "u", n_users),
                   collect.ids_in_order(items, "item_id", "i", n_items))


def objective(params: SparkAlsParams) -> Objective:
    """What fold-in and online updates must solve to stay on the model Spark trained."""
    return Objective(SPARK, alpha=params.alpha, regularization=params.regularization)


def train_and_publish(
    pairs: DataFrame,
    model_root: pathlib.Path,
    name: str,
    params: SparkAlsParams,
    *,
    evaluation: pipeline.Evaluation | None,
    item_metadata_path: pathlib.Path | None = None,
    source: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    ann_trees: int = 50,
    exact_neighbours: int = 50,
    first_version: int = 1,
    event_types: dict[str, EventType] | None = None,
    as_of: float | None = None,
) -> pipeline.Published:
    data = index(pairs)
    n_users, n_items = len(data.user_ids), len(data.item_ids)
    metrics: dict[str, float] = {}
    if evaluation is not None and evaluation.holdout > 0:
        flagged = flag_test(data.ratings, evaluation.holdout, seed=evaluation.seed,
                            min_items=evaluation.min_user_items).cache()
        train_part = flagged.where(~flagged["test"]).select("u", "i", "r")
        log.info("training", engine="spark", data="train split")
        held = fit(train_part, params, n_users, n_items)
        train_m, test_m = collect.matrix(flagged, n_users, n_items, flag="test")
        assert test_m is not None
        metrics = evaluate(Split(train_m, test_m), held.users, held.items, evaluation.k,
                           max_users=evaluation.max_users, seed=evaluation.seed)
        flagged.unpersist()
    log.info("training", engine="spark", data="all", users=n_users, items=n_items)
    factors = fit(data.ratings, params, n_users, n_items)
    if factors.missing_users or factors.missing_items:
        log.warning("spark_factors_missing", users=factors.missing_users, items=factors.missing_items)
    matrix, _ = collect.matrix(data.ratings, n_users, n_items)
    local = Interactions(data.user_ids, data.item_ids, matrix)
    meta = None
    if item_metadata_path is not None:
        from reco_sidecar.training import items

        meta = items.read(item_metadata_path, local.item_ids)
    content = pipeline.package(
        local, factors.users, factors.items,
        algorithm="als",
        training={"algorithm": "als", **params.as_dict(),
                  **({"evaluation": evaluation.as_dict()} if evaluation is not None else {}),
                  "users": n_users, "items": n_items, "pairs": int(matrix.nnz), **(training or {})},
        fold_in={"regularization": params.regularization, "alpha": params.alpha},
        objective=objective(params),
        event_types=event_types,
        as_of=as_of,
        metrics=metrics,
        item_metadata=meta,
        source=source,
    )
    data.ratings.unpersist()
    path = write_version(model_root, name, content, ann_trees=ann_trees, exact_neighbours=exact_neighbours,
                         first_version=first_version)
    log.info("published", model=name, version=int(path.name), path=str(path), algorithm="als", engine="spark")
    return pipeline.Published(path, metrics)
