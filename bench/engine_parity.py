"""Quality parity of the two training engines on the demo data: the demo interactions split per
user (every fifth interaction of users with at least five held out, as bench/ranking_tradeoff.py
splits them), then `reco-sidecar train` with implicit (version 1) and with `--engine spark`
(version 2) on the rest, with matched hyperparameters, then `reco-sidecar evaluate` over one
experiment whose two arms pin those versions: every held-out user is scored by both, so the
difference in NDCG@10 and recall@10 comes with a paired bootstrap confidence interval.

Matched hyperparameters (docs/training.md, "Mapping the parameters"): the same factors,
iterations and α; Spark's λ is per positive value, so λ_spark = λ_implicit / n̄, n̄ the median
count of items per user in the training split.

    python -m bench.engine_parity   # bench/results/engine_parity.json
"""

from __future__ import annotations

import argparse
import csv
import json
import pathlib
import statistics
import subprocess
import sys
from collections import Counter

from bench.common import RESULTS
from bench.ranking_tradeoff import split
from harness import procs, scaffold
from reco_sidecar.training import demo_data

# What "within a stated tolerance" means here (docs/training.md): the two engines' NDCG@10 on the
# same held-out users differ by at most this much, absolute, CI included.
TOLERANCE = 0.01


def _run(cmd: list[str], deadline: scaffold.Deadline) -> None:
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, text=True)
    try:
        _, err = proc.communicate(timeout=deadline.bound(1800))
    finally:
        procs.kill_group(proc.pid, grace=2.0)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} … exited {proc.returncode}: {err[-1500:]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=pathlib.Path, default=RESULTS / "engine_parity.json")
    p.add_argument("--factors", type=int, default=32)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--regularization", type=float, default=0.05, help="implicit's λ")
    p.add_argument("--alpha", type=float, default=20.0)
    p.add_argument("--spark-master", default="local[2]")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--work", type=pathlib.Path, default=RESULTS / "work" / "engine_parity",
                   help="data, models and report; versions already trained there are reused")
    args = p.parse_args(argv)
    command = ["python", "-m", "bench.engine_parity", *(argv if argv is not None else sys.argv[1:])]
    with scaffold.bounded_run(args.out, time_limit=3600, margin=30, command=command,
                              benchmark="engine_parity") as r:
        work = args.work
        work.mkdir(parents=True, exist_ok=True)
        data_csv, _ = demo_data.write(demo_data.DemoSpec(), work / "all.csv")
        train_csv, held_csv = work / "train.csv", work / "held.csv"
        split(data_csv, train_csv, held_csv)
        per_user = Counter(row[0] for row in list(csv.reader(train_csv.open()))[1:])
        median_items = statistics.median(per_user.values())
        spark_reg = args.regularization / median_items
        root = work / "models"
        base = [sys.executable, "-m", "reco_sidecar", "--log-level", "warning", "train", "--interactions",
                str(train_csv), "--model-root", str(root), "--name", "demo", "--factors", str(args.factors),
                "--iterations", str(args.iterations), "--alpha", str(args.alpha), "--holdout", "0",
                "--no-progress"]
        if not (root / "demo" / "1").is_dir():
            _run([*base, "--regularization", str(args.regularization)], r.deadline)
        if not (root / "demo" / "2").is_dir():
            _run([*base, "--regularization", str(spark_reg), "--engine", "spark", "--spark-master",
                  args.spark_master], r.deadline)
        (work / "experiments.toml").write_text(
            '[[experiments]]\nname = "engines"\nsalt = "engines-1"\nshare = 1\narms = [\n'
            '  { name = "implicit", model = "demo", version = 1 },\n'
            '  { name = "spark", model = "demo", version = 2 },\n]\n')
        report = work / "report.json"
        _run([sys.executable, "-m", "reco_sidecar", "evaluate", "--model-root", str(root), "--experiments",
              str(work / "experiments.toml"), "--experiment", "engines", "--held-out", str(held_csv),
              "--default-model", "demo", "--bootstrap", str(args.bootstrap), "--out", str(report)], r.deadline)
        r.record["hyperparameters"] = {"factors": args.factors, "iterations": args.iterations, "alpha": args.alpha,
                                       "implicit_regularization": args.regularization,
                                       "spark_regularization": spark_reg, "median_items_per_user": median_items}
        r.record["tolerance_ndcg_at_10"] = TOLERANCE
        r.record["report"] = json.loads(report.read_text())
    return 2 if r.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
