"""The accuracy and diversity trade-off of the ranking rules on the demo data, offline: the
demo interactions split per user (every fifth interaction of users with at least five held
out), ALS trained on the rest as `reco-sidecar demo` trains it, then `reco-sidecar evaluate
--rules` over one experiment whose arms are the same model with different rule sets.

    python -m bench.ranking_tradeoff  # bench/results/ranking_tradeoff.json
"""

from __future__ import annotations

import argparse
import csv
import json
import pathlib
import sys
from collections import Counter

from bench.common import RESULTS
from harness import scaffold
from reco_sidecar import cli
from reco_sidecar.training import als, demo_data, interactions, items, pipeline

ARMS = {
    "control": "",
    "cap2": '[rules.diversity]\ncap_field = "creator"\ncap = 2\n',
    "mmr0.3": "[rules.diversity]\nmmr_lambda = 0.3\n",
    "mmr0.6": "[rules.diversity]\nmmr_lambda = 0.6\n",
    "cap2-mmr0.3": '[rules.diversity]\ncap_field = "creator"\ncap = 2\nmmr_lambda = 0.3\n',
}


def split(path: pathlib.Path, train: pathlib.Path, held: pathlib.Path) -> None:
    header, *body = list(csv.reader(path.open()))
    counts = Counter(r[0] for r in body)
    seen: Counter[str] = Counter()
    kept, out = [header], [["user_id", "item_id"]]
    for r in body:
        seen[r[0]] += 1
        if counts[r[0]] >= 5 and seen[r[0]] % 5 == 0:
            out.append(r[:2])
        else:
            kept.append(r)
    csv.writer(train.open("w", newline="")).writerows(kept)
    csv.writer(held.open("w", newline="")).writerows(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=pathlib.Path, default=RESULTS / "ranking_tradeoff.json")
    p.add_argument("--bootstrap", type=int, default=1000)
    args = p.parse_args(argv)
    command = ["python", "-m", "bench.ranking_tradeoff", *sys.argv[1:]]
    with scaffold.bounded_run(args.out, time_limit=900, margin=15, command=command,
                              benchmark="ranking_tradeoff") as r:
        work = RESULTS / "ranking_tradeoff"
        work.mkdir(parents=True, exist_ok=True)
        data_csv, items_csv = demo_data.write(demo_data.DemoSpec(), work / "all.csv")
        train_csv, held_csv = work / "train.csv", work / "held.csv"
        split(data_csv, train_csv, held_csv)
        data = interactions.read_csv(train_csv)
        root = work / "models"
        if not (root / "demo" / "1").is_dir():
            pipeline.train_als(data, root, "demo", als.AlsParams(factors=32, iterations=10),
                               item_metadata=items.read(items_csv, data.item_ids))
        arms = ", ".join(f'{{ name = "{name}", model = "demo" }}' for name in ARMS)
        (work / "experiments.toml").write_text(
            f'[[experiments]]\nname = "feed"\nsalt = "feed-1"\nshare = 1\narms = [{arms}]\n')
        (work / "rules.toml").write_text("".join(
            f'[[rules]]\nmodel = "demo"\nexperiment = "feed"\narm = "{name}"\n{body}\n'
            for name, body in ARMS.items() if body))
        report = work / "report.json"
        code = cli.main(["evaluate", "--model-root", str(root), "--experiments", str(work / "experiments.toml"),
                         "--experiment", "feed", "--held-out", str(held_csv), "--default-model", "demo",
                         "--rules", str(work / "rules.toml"), "--bootstrap", str(args.bootstrap),
                         "--out", str(report)])
        if code:
            raise RuntimeError(f"evaluate exited {code}")
        r.record["report"] = json.loads(report.read_text())
        r.record["rules"] = (work / "rules.toml").read_text()
    return 2 if r.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
