"""Resident memory of 1 vs 2 workers serving the same model: PSS (from
/proc/<pid>/smaps_rollup, which splits shared pages between the processes mapping them) and
RSS, summed over the process tree, after every worker has served real traffic.

The model's arrays and ANN index are memory-mapped, so a second worker should add far less
than the model's size.

    python -m bench.memory            # writes bench/results/memory.json
"""

from __future__ import annotations

import pathlib
import time
from typing import Any

from bench import common
from harness import accounting, bench_model, procs, scaffold
from harness.sidecar import recommender

ROLLUP = ("Rss", "Pss", "Pss_Anon", "Pss_File", "Shared_Clean", "Private_Clean", "Private_Dirty", "Anonymous")


def exercise(address: str, users: list[str], items: list[str], requests: int) -> None:
    from reco_sidecar.gen.reco.v1 import reco_pb2

    with recommender(address) as s:
        for i in range(requests):
            s.Recommend(reco_pb2.RecommendRequest(user_id=users[(i * 7919) % len(users)], n=10), timeout=30)
            s.Similar(reco_pb2.SimilarRequest(item_id=items[(i * 104729) % len(items)], n=10), timeout=30)
        list(s.BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=users[:2000], n=10), timeout=120))


def measure(model: bench_model.BenchModel, workers: int, requests: int, out_dir: pathlib.Path) -> dict[str, Any]:
    users, items = bench_model.read_ids(model.version_dir)
    with bench_model.serve(model, workers=workers, log_path=out_dir / f"memory-w{workers}.log",
                           log_level="warning") as sc:
        after_ready = accounting.tree_memory(sc.pgid)
        for address in sc.worker_addresses:
            exercise(address, users, items, requests)
        time.sleep(1.0)
        samples = [accounting.tree_memory(sc.pgid) for _ in range(3)]
        best = max(samples, key=lambda m: m["pss_kib"])
        per = {}
        for pid in procs.group_pids(sc.pgid):
            role = "supervisor" if pid == sc.pgid else "worker"
            per[str(pid)] = {"role": role, **{k: v for k, v in accounting.smaps_rollup(pid).items() if k in ROLLUP}}
        return {
            "workers": workers,
            "pss_mib": round(best["pss_kib"] / 1024, 1), "rss_mib": round(best["rss_kib"] / 1024, 1),
            "after_ready_pss_mib": round(after_ready["pss_kib"] / 1024, 1),
            "after_ready_rss_mib": round(after_ready["rss_kib"] / 1024, 1),
            "processes": per,
            "requests_per_worker": {"Recommend": requests, "Similar": requests, "BatchRecommend users": 2000},
        }


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__, time_limit=600)
    p.add_argument("--requests", type=int, default=500, help="Recommend and Similar calls per worker")
    args = p.parse_args(argv)

    def body(model: bench_model.BenchModel, deadline: scaffold.Deadline, result: dict[str, Any]) -> None:
        logs = common.RESULTS / "logs"
        one = measure(model, 1, args.requests, logs)
        two = measure(model, 2, args.requests, logs)
        model_mib = model.bytes_on_disk() / 2**20
        result["model_mib_on_disk"] = round(model_mib, 1)
        result["one_worker"] = one
        result["two_workers"] = two
        extra_pss = two["pss_mib"] - one["pss_mib"]
        extra_rss = two["rss_mib"] - one["rss_mib"]
        result["second_worker_extra_pss_mib"] = round(extra_pss, 1)
        result["second_worker_extra_rss_mib"] = round(extra_rss, 1)
        result["second_worker_extra_pss_share_of_model"] = round(extra_pss / model_mib, 3)
        scaffold.log("memory", one_pss=one["pss_mib"], two_pss=two["pss_mib"], extra_pss=round(extra_pss, 1),
                model_mib=round(model_mib, 1))

    return common.run("memory", args, body)


if __name__ == "__main__":
    raise SystemExit(main())
