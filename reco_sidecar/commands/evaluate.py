"""`reco-sidecar evaluate`: an experiment's arms compared offline on held-out interactions, or
(`--replay`) learning between retrains measured by replaying later interactions in time order."""

from __future__ import annotations

import argparse
import csv
import json
import pathlib

from reco_sidecar.common.errors import InvalidArgument
from reco_sidecar.experiments import config, offline, replay
from reco_sidecar.ranking import rules as ranking_rules
from reco_sidecar.training import als, weights


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("evaluate", help="score every arm of an experiment on held-out interactions, or "
                       "(--replay) the lift of online updates on interactions replayed in time order")
    p.add_argument("--model-root", type=pathlib.Path, required=True)
    p.add_argument("--experiments", type=pathlib.Path, help="experiments file (TOML or JSON)")
    p.add_argument("--experiment", help="name of the experiment to evaluate")
    p.add_argument("--held-out", type=pathlib.Path,
                   help="CSV with header user_id,item_id: interactions the models were not trained on")
    p.add_argument("--default-model",
                   help="the model baselines and popularity bias are measured against")
    p.add_argument("--rules", type=pathlib.Path,
                   help="ranking rules file (TOML or JSON): each arm is ranked with its rule set, as served")
    p.add_argument("--creator-field", default="creator",
                   help="item metadata field whose largest share of a list is reported")
    r = p.add_argument_group("replay (docs/online.md)")
    r.add_argument("--replay", type=pathlib.Path, metavar="CSV",
                   help="interactions user_id,item_id,weight,timestamp: train on those up to the split, replay "
                   "the rest in time order with and without online updates (replaces the options above)")
    r.add_argument("--through", choices=replay.THROUGH, default="in-process",
                   help="where the online arm comes from: the online code in this process, or a real sidecar "
                   "started on the trained version, fed through the Feedback RPC and asked with Recommend")
    r.add_argument("--split-at", type=float, help="Unix time the training data ends (default: --train-share)")
    r.add_argument("--train-share", type=float, default=0.8,
                   help="split where this share of the interactions has happened")
    r.add_argument("--name", default="replay", help="model name the trained version is written under")
    r.add_argument("--weights", type=_weights, help="event types and weights (as train --weights)")
    r.add_argument("--factors", type=int, default=als.AlsParams().factors)
    r.add_argument("--iterations", type=int, default=als.AlsParams().iterations)
    r.add_argument("--regularization", type=float, default=als.AlsParams().regularization)
    r.add_argument("--alpha", type=float, default=als.AlsParams().alpha)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap rounds for the difference CIs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=pathlib.Path, required=True, help="JSON report to write")
    p.add_argument("--plot", type=pathlib.Path, help="PNG plot to write (needs matplotlib)")
    p.set_defaults(run=run)


def read_pairs(path: pathlib.Path) -> list[tuple[str, str]]:
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or header[:2] != ["user_id", "item_id"]:
            raise InvalidArgument(f"{path}: header must start with user_id,item_id (got {header})", field="held_out")
        return [(row[0], row[1]) for row in reader if len(row) >= 2]


def _weights(text: str) -> dict[str, float]:
    try:
        return weights.parse(text)
    except InvalidArgument as e:
        raise argparse.ArgumentTypeError(e.message) from None


def run_replay(args: argparse.Namespace) -> int:
    if not 0.0 < args.train_share < 1.0:
        raise InvalidArgument(f"must be between 0 and 1, got {args.train_share}", field="train_share")
    params = als.AlsParams(factors=args.factors, iterations=args.iterations, regularization=args.regularization,
                           alpha=args.alpha, seed=args.seed)
    spec = replay.ReplaySpec(args.replay, args.model_root, name=args.name, split_at=args.split_at,
                             train_share=args.train_share, weights=args.weights, params=params, k=args.k,
                             rounds=args.bootstrap, seed=args.seed, through=args.through)
    report = replay.run(spec)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    if args.plot:
        replay.plot(report, args.plot)
    print(json.dumps({k: report[k] for k in ("split_at", "counts", "metrics", "lift")}))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.k < 1 or args.bootstrap < 1:
        raise InvalidArgument("--k and --bootstrap must be positive", field="k" if args.k < 1 else "bootstrap")
    if args.replay is not None:
        return run_replay(args)
    for name in ("experiments", "experiment", "held_out", "default_model"):
        if getattr(args, name) is None:
            raise InvalidArgument(f"--{name.replace('_', '-')} is required (or --replay)", field=name)
    experiment = config.load(args.experiments).get(args.experiment)
    if experiment is None:
        raise InvalidArgument(f"{args.experiments} has no experiment {args.experiment!r}", field="experiment")
    held = offline.read_held_out(read_pairs(args.held_out))
    if not held.users:
        raise InvalidArgument(f"{args.held_out} holds no interactions", field="held_out")
    rules = ranking_rules.load(args.rules) if args.rules else None
    report = offline.compare(experiment, args.model_root, held, default_model=args.default_model, k=args.k,
                             rounds=args.bootstrap, seed=args.seed, rules=rules, creator_field=args.creator_field)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    if args.plot:
        offline.plot(report, args.plot)
    print(json.dumps(report))
    return 0
