"""`train --engine spark`: the flags Spark adds to `train`, and its run. The reading, training
and export live in training/spark/; publishing to a model store and the reload request are the
same as for the one-machine engine."""

from __future__ import annotations

import argparse
from typing import Any

from reco_sidecar.commands import store_publish, train_finish
from reco_sidecar.common.errors import InvalidArgument
from reco_sidecar.engine import eventtypes
from reco_sidecar.training import database, pipeline, weights

ENGINES = ("implicit", "spark")


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("engine")
    g.add_argument("--engine", choices=ENGINES, default="implicit",
                   help="implicit: one machine (default); spark: Spark MLlib ALS on --spark-master")
    g.add_argument("--spark-master",
                   help="Spark master URL: local[*], spark://HOST:PORT, k8s://https://HOST:PORT (default: the "
                   "one spark-submit was given, else local[*])")
    g.add_argument("--spark-conf", action="append", metavar="KEY=VALUE",
                   help="extra Spark setting, repeatable (e.g. spark.executor.memory=8g)")
    g.add_argument("--spark-driver-memory", help="driver memory, e.g. 8g (holds the exported artifact)")
    g.add_argument("--input-format", choices=("csv", "parquet"),
                   help="format of --interactions with --engine spark (default: from the name)")
    g.add_argument("--jdbc-partition-column",
                   help="with --dsn and --engine spark: numeric, date or timestamp column each JDBC "
                   "partition reads a range of (default: --time-column)")
    g.add_argument("--jdbc-partitions", type=int, default=8,
                   help="parallel JDBC reads with --engine spark (default 8)")


def check(args: argparse.Namespace) -> None:
    """Flag combinations refused before any work (and before a JVM starts)."""
    if args.engine != "spark":
        return
    if args.algorithm != "als":
        raise InvalidArgument("--engine spark trains ALS only (Spark MLlib has no BPR)", field="algorithm")
    if (args.interactions is None) == (args.dsn is None):
        raise InvalidArgument("give exactly one of --interactions or --dsn", field="interactions")


def run(args: argparse.Namespace) -> int:
    from reco_sidecar.training import reload
    from reco_sidecar.training.spark import als, session, source
    from reco_sidecar.training.spark import pipeline as spark_pipeline

    check(args)
    token = reload.read_token(args.reload_token_file) if args.reload and args.reload_token_file else None
    remote = store_publish.remote_for(args)
    first_version = store_publish.first_version(remote)
    given = {k: v for k, v in (("factors", args.factors), ("iterations", args.iterations),
                               ("regularization", args.regularization)) if v is not None}
    params = als.SparkAlsParams(alpha=args.alpha, seed=args.seed, **given)
    packages = ((session.POSTGRES_JDBC,) if args.dsn else ()) + (
        (session.HADOOP_AWS,) if args.interactions and str(args.interactions).startswith("s3://") else ())
    settings = session.SparkSettings(
        master=args.spark_master, driver_memory=args.spark_driver_memory,
        conf=session.parse_conf(args.spark_conf), packages=packages, s3_endpoint_url=args.s3_endpoint_url)
    evaluation = pipeline.Evaluation(args.holdout, args.k, args.seed, args.min_user_items, args.eval_max_users)
    with session.session(settings) as spark:
        read: dict[str, Any]
        if args.interactions is not None:
            path = str(args.interactions)
            got = source.read_files(spark, path, source.file_format(path, args.input_format),
                                    until=None if args.as_of is None else args.as_of.timestamp())
            where: dict[str, Any] = {"kind": "files", "path": path}
            read = {}
        else:
            spec = database.ReadSpec(
                table=database.TableSpec(args.table, args.user_column, args.item_column, args.type_column,
                                         args.time_column),
                type_weights=args.weights,
                half_life_days=weights.check_half_life(args.half_life_days),
                as_of=args.as_of, batch_size=args.batch_size)
            jdbc = source.jdbc_from_dsn(args.dsn, args.jdbc_partition_column or args.time_column,
                                        args.jdbc_partitions)
            got = source.read_jdbc(spark, jdbc, spec)
            where = {"kind": "database", **database.describe_dsn(args.dsn), **spec.table.as_dict()}
            read = {"type_weights": spec.type_weights, "half_life_days": spec.half_life_days,
                    "jdbc_partitions": jdbc.partitions, "jdbc_partition_column": jdbc.partition_column}
        published = spark_pipeline.train_and_publish(
            got.pairs, args.model_root, args.name, params,
            evaluation=evaluation if args.holdout > 0 else None,
            item_metadata_path=args.items, source=where,
            training={**read, "spark_master": spark.sparkContext.master},
            ann_trees=args.ann_trees, exact_neighbours=args.exact_neighbours,
            first_version=first_version, event_types=eventtypes.from_weights(args.weights), as_of=got.as_of)
    return train_finish.finish(args, published, remote, token)
