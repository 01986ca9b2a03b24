"""What the ranking stage and reasons cost: sidecar CPU seconds per Recommend call under the same
unthrottled ghz load (32 concurrent callers), in one run, sidecars alternating:

- `plain`: no rules file: the model's exact top-10;
- `ranked`: a rules file with a creator cap of 2 and MMR (lambda 0.3) for the model;
- `explained`: no rules, every request with explain = 3 (reasons for each of the 10 items).

Ratios: ranked / plain and explained / plain, of CPU per call and of requests/s. The model is
the demo data set (2,000 users, 1,000 items, 32 factors, creators and categories in its item
metadata), or `--scale` times it, trained once into bench/results/ranking_stage/. A small
catalogue makes retrieval cheap, so the stage's share of a call is larger there.

    python -m bench.ranking_stage [--scale 10] [--seconds 8] [--repeats 3]  # bench/results/ranking_stage.json
"""

from __future__ import annotations

import argparse
import json
import pathlib
import random
import statistics
import sys
from typing import Any

from bench.common import RESULTS
from harness import accounting, ghz_run, scaffold
from harness.ghz_run import GhzRun
from harness.gotools import find as find_ghz
from harness.sidecar import running_sidecar
from reco_sidecar.training import als, demo_data, interactions, items, pipeline

RULES = """
[[rules]]
model = "demo"
[rules.diversity]
cap_field = "creator"
cap = 2
mmr_lambda = 0.3
"""


def _spec(scale: int) -> demo_data.DemoSpec:
    base = demo_data.DemoSpec()
    return demo_data.DemoSpec(users=base.users * scale, items=base.items * scale,
                              interactions=base.interactions * scale)


def _model(out: pathlib.Path, scale: int) -> pathlib.Path:
    root = out / f"models-x{scale}"
    if not (root / "demo" / "1").is_dir():
        csv_path, items_path = demo_data.write(_spec(scale), out / f"interactions-x{scale}.csv")
        data = interactions.read_csv(csv_path)
        pipeline.train_als(data, root, "demo", als.AlsParams(factors=32, iterations=10),
                           item_metadata=items.read(items_path, data.item_ids))
    return root


def _data(out: pathlib.Path, explain: int, users: int) -> pathlib.Path:
    rng = random.Random(1)
    rows = [{"user_id": demo_data.user_id(rng.randrange(users)), "n": 10,
             **({"explain": explain} if explain else {})} for _ in range(5000)]
    path = out / f"data-explain{explain}.json"
    path.write_text(json.dumps(rows))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--scale", type=int, default=1,
                   help="the demo data times this many users, items and interactions (1: 2,000 x 1,000)")
    p.add_argument("--out", type=pathlib.Path, default=RESULTS / "ranking_stage.json")
    p.add_argument("--time-limit", type=float, default=900)
    args = p.parse_args(argv)
    command = ["python", "-m", "bench.ranking_stage", *sys.argv[1:]]
    with scaffold.bounded_run(args.out, time_limit=args.time_limit, margin=15, command=command,
                              benchmark="ranking_stage") as r:
        ghz = find_ghz("ghz", install=True)
        if ghz is None:
            raise RuntimeError("ghz is not installed and go is not available to install it")
        out = RESULTS / "ranking_stage"
        out.mkdir(parents=True, exist_ok=True)
        root = _model(out, args.scale)
        users = _spec(args.scale).users
        r.record["catalogue"] = {"users": users, "items": _spec(args.scale).items}
        rules = out / "rules.toml"
        rules.write_text(RULES)
        modes = {"plain": ([], _data(out, 0, users)), "ranked": (["--rules", str(rules)], _data(out, 0, users)),
                 "explained": ([], _data(out, 3, users))}
        runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
        for rep in range(args.repeats):
            for mode, (extra, data) in modes.items():
                with running_sidecar(root, "demo", workers=args.workers, extra_args=extra, tied=True,
                                     env={"OMP_NUM_THREADS": "1"}, stop_grace=5.0,
                                     log_path=RESULTS / "logs" / f"ranking-{mode}.log") as sc:
                    flags, source = ghz_run.descriptor_source(ghz, sc.address, out)
                    r.record["ghz_descriptors"] = source
                    warm = GhzRun(f"warmup-{mode}", "Recommend", data, concurrency=args.concurrency,
                                  connections=2 * args.workers, duration_s=2)
                    ghz_run.run_ghz(ghz, flags, sc.address, warm, out / "warmup.json", r.deadline)
                    run = GhzRun(f"{mode}-c{args.concurrency}-r{rep}", "Recommend", data,
                                 concurrency=args.concurrency, connections=2 * args.workers,
                                 duration_s=args.seconds)
                    with accounting.CpuMeter(sc.pgid) as cpu:
                        s = ghz_run.run_ghz(ghz, flags, sc.address, run, out / f"ghz-{run.label}.json", r.deadline)
                    s["cpu"] = cpu.summary(s.get("client_cpu_s"))
                    s["cpu_ms_per_call"] = round(1000 * s["cpu"]["sidecar_cpu_s"] / max(s["ok"], 1), 4)
                    runs[mode].append(s)
        r.record["runs"] = runs

        def med(mode: str, f: str) -> float:
            return float(statistics.median(x[f] for x in runs[mode]))

        r.record["comparison"] = {
            "concurrency": args.concurrency,
            "cpu_ms_per_call": {m: med(m, "cpu_ms_per_call") for m in modes},
            "rps": {m: med(m, "rps") for m in modes},
            "cpu_ratio_ranked_over_plain": round(med("ranked", "cpu_ms_per_call") / med("plain", "cpu_ms_per_call"), 3),
            "cpu_ratio_explained_over_plain": round(med("explained", "cpu_ms_per_call")
                                                    / med("plain", "cpu_ms_per_call"), 3),
            "rps_ratio_ranked_over_plain": round(med("ranked", "rps") / med("plain", "rps"), 3),
            "rps_ratio_explained_over_plain": round(med("explained", "rps") / med("plain", "rps"), 3),
            "errors": sum(x["errors"] for v in runs.values() for x in v),
        }
        scaffold.log("ranking_stage", **r.record["comparison"])
    return 2 if r.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
