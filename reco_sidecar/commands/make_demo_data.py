"""`reco-sidecar make-demo-data`: a deterministic synthetic interaction log."""

from __future__ import annotations

import argparse
import pathlib

from reco_sidecar.common.errors import InvalidArgument
from reco_sidecar.training import demo_data


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("make-demo-data", help="write a synthetic interactions CSV (and item metadata CSV)")
    defaults = demo_data.DemoSpec()
    p.add_argument("--out", type=pathlib.Path, required=True, help="interactions CSV to write")
    p.add_argument("--items-out", type=pathlib.Path, help="item metadata CSV (default: <out>_items.csv)")
    p.add_argument("--users", type=int, default=defaults.users)
    p.add_argument("--items", type=int, default=defaults.items)
    p.add_argument("--interactions", type=int, default=defaults.interactions)
    p.add_argument("--clusters", type=int, default=defaults.clusters)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--drift", type=float, default=defaults.drift,
                   help="share of users whose taste changes once, at a random time in the "
                   f"{demo_data.DAYS} days the timestamps span (default {defaults.drift:g}: tastes never change)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.drift <= 1.0:
        raise InvalidArgument(f"must be a share between 0 and 1, got {args.drift}", field="drift")
    spec = demo_data.DemoSpec(users=args.users, items=args.items, interactions=args.interactions,
                              clusters=args.clusters, seed=args.seed, drift=args.drift)
    out, items = demo_data.write(spec, args.out, args.items_out)
    print(f"wrote {spec.interactions} interactions to {out} and item metadata to {items}")
    return 0
