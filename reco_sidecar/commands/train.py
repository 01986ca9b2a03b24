"""`reco-sidecar train`: train on interactions (a CSV or uro's database), evaluate against a
popularity baseline, publish a new model version, and optionally tell a sidecar to reload."""

from __future__ import annotations

import argparse
import datetime as dt
import pathlib
from typing import Any

from reco_sidecar.commands import store_publish, train_finish, train_spark
from reco_sidecar.common.errors import InvalidArgument
from reco_sidecar.engine import eventtypes
from reco_sidecar.training import algorithms, als, bpr, database, interactions, items, pipeline, weights
from reco_sidecar.training.interactions import Interactions


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("train", help="train ALS or BPR, evaluate, and publish a new version")
    als_d, bpr_d, eval_d, tab = als.AlsParams(), bpr.BprParams(), pipeline.Evaluation(), database.TableSpec()
    src = p.add_argument_group("data (one of --interactions, --dsn)")
    src.add_argument("--interactions", help="CSV user_id,item_id[,weight][,timestamp]; with --engine spark "
                     "also Parquet, and s3://BUCKET/KEY paths")
    src.add_argument("--dsn", help="PostgreSQL/CockroachDB connection string; libpq's PG* variables "
                     "and ~/.pgpass fill in what it leaves out (keep passwords there, not here)")
    src.add_argument("--table", default=tab.table, help="interaction table, optionally schema.table")
    src.add_argument("--user-column", default=tab.user_column)
    src.add_argument("--item-column", default=tab.item_column)
    src.add_argument("--type-column", default=tab.type_column)
    src.add_argument("--time-column", default=tab.time_column)
    src.add_argument("--weights", type=_weights, default=dict(weights.DEFAULT_TYPE_WEIGHTS),
                     help="interaction type weights, recorded in the version as the event types it "
                     "accepts online; a negative weight (skip=-0.3, hide=-1) marks a negative type; other "
                     "types are ignored (default: "
                     + ",".join(f"{k}={v:g}" for k, v in weights.DEFAULT_TYPE_WEIGHTS.items()) + ")")
    src.add_argument("--half-life-days", type=float, help="time decay: an interaction this old counts half")
    src.add_argument("--as-of", type=_timestamp,
                     help="ISO time that ages are measured from (default: now); fixes a re-run's weights. "
                     "With --interactions, CSV rows dated after it are left out. Recorded in the version "
                     "as the time its training data ends")
    src.add_argument("--batch-size", type=int, default=50_000, help="rows fetched per round trip")
    p.add_argument("--items", type=pathlib.Path,
                   help="item metadata CSV item_id,category,tags[,created_at][,creator...]")
    p.add_argument("--model-root", type=pathlib.Path, required=True)
    p.add_argument("--name", required=True, help="model name (directory under the model root)")
    p.add_argument("--algorithm", choices=algorithms.NAMES, default="als")
    p.add_argument("--factors", type=int,
                   help=f"latent factors (default ALS {als_d.factors}, BPR {bpr_d.factors})")
    p.add_argument("--iterations", type=int,
                   help=f"passes over the data (default ALS {als_d.iterations}, BPR {bpr_d.iterations})")
    p.add_argument("--regularization", type=float,
                   help=f"(default ALS {als_d.regularization}, BPR {bpr_d.regularization})")
    p.add_argument("--alpha", type=float, default=als_d.alpha, help="ALS: confidence per unit of weight")
    p.add_argument("--learning-rate", type=float, default=bpr_d.learning_rate, help="BPR: SGD step size")
    p.add_argument("--seed", type=int, default=als_d.seed, help="training and hold-out split seed")
    ev = p.add_argument_group("evaluation")
    ev.add_argument("--holdout", type=float, default=eval_d.holdout,
                    help="share of each user's items held out to evaluate (0: no evaluation)")
    ev.add_argument("--k", type=int, default=eval_d.k,
                    help="cut-off of precision@k, recall@k, NDCG@k, coverage@k")
    ev.add_argument("--min-user-items", type=int, default=eval_d.min_user_items,
                    help="users with fewer items keep them all in train")
    ev.add_argument("--eval-max-users", type=int, default=eval_d.max_users,
                    help="held-out users scored: a seeded sample when there are more (0: all)")
    p.add_argument("--ann-trees", type=int, default=50)
    p.add_argument("--exact-neighbours", type=int, default=50,
                   help="width of the exact similar-items table built beside the ANN index (0: none)")
    p.add_argument("--reload", metavar="ADDRESS",
                   help="host:port of a running sidecar to switch to the new version")
    p.add_argument("--reload-timeout", type=float, default=120.0)
    p.add_argument("--reload-token-file", type=pathlib.Path,
                   help="file with a bearer token the sidecar accepts for Reload")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars on stderr (default: when stderr is a terminal)")
    store_publish.add_arguments(p)
    train_spark.add_arguments(p)
    p.set_defaults(run=run)


def _weights(text: str) -> dict[str, float]:
    try:
        return weights.parse(text)
    except InvalidArgument as e:
        raise argparse.ArgumentTypeError(e.message) from None


def _timestamp(text: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    # A naive time is read as UTC, so that it compares unambiguously with timestamptz values.
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _params(args: argparse.Namespace) -> algorithms.Params:
    given = {k: v for k, v in (("factors", args.factors), ("iterations", args.iterations),
                               ("regularization", args.regularization)) if v is not None}
    if args.algorithm == "bpr":
        return bpr.BprParams(learning_rate=args.learning_rate, seed=args.seed, **given)
    return als.AlsParams(alpha=args.alpha, seed=args.seed, **given)


def _load(args: argparse.Namespace) -> tuple[Interactions, dict[str, Any], dict[str, Any]]:
    """The data, where it came from, and how it was read (for the manifest)."""
    if (args.interactions is None) == (args.dsn is None):
        raise InvalidArgument("give exactly one of --interactions CSV or --dsn", field="interactions")
    if args.interactions is not None:
        if str(args.interactions).startswith("s3://"):
            raise InvalidArgument("reading interactions from S3 needs --engine spark", field="interactions")
        until = None if args.as_of is None else args.as_of.timestamp()
        return (interactions.read_csv(pathlib.Path(args.interactions), until=until),
                {"kind": "csv", "path": str(args.interactions)}, {})
    spec = database.ReadSpec(
        table=database.TableSpec(args.table, args.user_column, args.item_column, args.type_column,
                                 args.time_column),
        type_weights=args.weights,
        half_life_days=weights.check_half_life(args.half_life_days),
        as_of=args.as_of,
        batch_size=args.batch_size,
    )
    source = {"kind": "database", **database.describe_dsn(args.dsn), **spec.table.as_dict()}
    data, as_of = database.read_interactions(args.dsn, spec, show_progress=args.progress)
    data = Interactions(data.user_ids, data.item_ids, data.matrix, as_of.timestamp())
    read = {"type_weights": spec.type_weights, "half_life_days": spec.half_life_days,
            "as_of": as_of.isoformat()}
    return data, source, read


def run(args: argparse.Namespace) -> int:
    if args.engine == "spark":
        return train_spark.run(args)
    from reco_sidecar.training import reload

    # A bad token file should fail now, not after the training it was meant to publish.
    token = reload.read_token(args.reload_token_file) if args.reload and args.reload_token_file else None
    # The store is asked before training: an unreachable one fails now, not after an hour.
    remote = store_publish.remote_for(args)
    first_version = store_publish.first_version(remote)
    data, source, read = _load(args)
    meta = None
    if args.items:
        meta = items.read(args.items, data.item_ids)
    evaluation = pipeline.Evaluation(args.holdout, args.k, args.seed, args.min_user_items, args.eval_max_users)
    published = pipeline.train_and_publish(
        data, args.model_root, args.name, _params(args),
        evaluation=evaluation if args.holdout > 0 else None,
        item_metadata=meta, source=source, training=read, ann_trees=args.ann_trees,
        exact_neighbours=args.exact_neighbours,
        show_progress=args.progress,
        first_version=first_version,
        event_types=eventtypes.from_weights(args.weights),
    )
    return train_finish.finish(args, published, remote, token)
