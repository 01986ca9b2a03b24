"""`reco-sidecar evaluate`: an experiment's arms compared offline on held-out interactions."""

from __future__ import annotations

import argparse
import csv
import json
import pathlib

from reco_sidecar.common.errors import InvalidArgument
from reco_sidecar.experiments import config, offline
from reco_sidecar.ranking import rules as ranking_rules


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("evaluate", help="score every arm of an experiment on held-out interactions")
    p.add_argument("--model-root", type=pathlib.Path, required=True)
    p.add_argument("--experiments", type=pathlib.Path, required=True, help="experiments file (TOML or JSON)")
    p.add_argument("--experiment", required=True, help="name of the experiment to evaluate")
    p.add_argument("--held-out", type=pathlib.Path, required=True,
                   help="CSV with header user_id,item_id: interactions the models were not trained on")
    p.add_argument("--default-model", required=True,
                   help="the model baselines and popularity bias are measured against")
    p.add_argument("--rules", type=pathlib.Path,
                   help="ranking rules file (TOML or JSON): each arm is ranked with its rule set, as served")
    p.add_argument("--creator-field", default="creator",
                   help="item metadata field whose largest share of a list is reported")
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


def run(args: argparse.Namespace) -> int:
    if args.k < 1 or args.bootstrap < 1:
        raise InvalidArgument("--k and --bootstrap must be positive", field="k" if args.k < 1 else "bootstrap")
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
