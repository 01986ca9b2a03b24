"""`reco-sidecar train`: train on interactions and publish a new model version."""

from __future__ import annotations

import argparse
import pathlib

from reco_sidecar.artifact.writer import ItemMetadata
from reco_sidecar.training import als, interactions, pipeline


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("train", help="train implicit ALS and publish a new version")
    defaults = als.AlsParams()
    p.add_argument("--interactions", type=pathlib.Path, required=True,
                   help="CSV user_id,item_id[,weight][,timestamp]")
    p.add_argument("--items", type=pathlib.Path, help="item metadata CSV item_id,category,tags")
    p.add_argument("--model-root", type=pathlib.Path, required=True)
    p.add_argument("--name", required=True, help="model name (directory under the model root)")
    p.add_argument("--factors", type=int, default=defaults.factors)
    p.add_argument("--iterations", type=int, default=defaults.iterations)
    p.add_argument("--regularization", type=float, default=defaults.regularization)
    p.add_argument("--alpha", type=float, default=defaults.alpha, help="confidence per unit of weight")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--ann-trees", type=int, default=50)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    data = interactions.read_csv(args.interactions)
    meta = None
    if args.items:
        cats, tags = interactions.read_item_metadata(args.items, data.item_ids)
        meta = ItemMetadata(cats, tags)
    params = als.AlsParams(factors=args.factors, iterations=args.iterations,
                           regularization=args.regularization, alpha=args.alpha, seed=args.seed)
    out = pipeline.train_als(data, args.model_root, args.name, params, item_metadata=meta,
                             source={"kind": "csv", "path": str(args.interactions)}, ann_trees=args.ann_trees)
    print(out)
    return 0
