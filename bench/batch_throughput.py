"""BatchRecommend throughput through gRPC (users/s for 50,000 users, n=10) beside two ceilings
measured in the same run on the same model:

- the float32 matrix product alone (blocks of users x all items), both cores: one process
  per core, one BLAS thread each, like the sidecar's workers;
- the naive pipeline: that product + `np.argpartition` top-10 (+ sorting the 10), both cores;
- for reference, the sidecar's own kernel in-process (`Model.recommend` on blocks), both cores.

    python -m bench.batch_throughput [--users 50000]   # writes bench/results/batch_throughput.json
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pathlib
import random
import time
from typing import Any

from bench import common, loadgen
from harness import accounting, bench_model, scaffold

BLOCK = 1000


def _kernel(args: tuple[str, str, list[int], int, float]) -> dict[str, Any]:
    """One process, one BLAS thread: `what` over blocks of user rows for `seconds` (at least one
    pass over `rows`); users/s."""
    what, version_dir, rows, n, start_at = args
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    import numpy as np

    users = np.load(pathlib.Path(version_dir) / "user_factors.npy", mmap_mode="r")
    items = np.ascontiguousarray(np.load(pathlib.Path(version_dir) / "item_factors.npy"))
    model = None
    if what == "sidecar_kernel":
        from reco_sidecar.artifact import loader
        from reco_sidecar.engine.query import RecQuery, Restriction

        model = loader.open_model(pathlib.Path(version_dir), checksums_too=False)
        none = Restriction.none()
    blocks = [rows[i : i + BLOCK] for i in range(0, len(rows), BLOCK)]
    # Warm-up on one block, then wait for the sibling process so both run at once.
    block_vectors = np.asarray(users[blocks[0]])
    (block_vectors @ items.T).sum()
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)
    started = time.perf_counter()
    cpu0 = time.process_time()
    done = 0
    for block in blocks:
        if what == "sidecar_kernel":
            assert model is not None
            model.recommend([RecQuery(0, n, none, user_row=r) for r in block])
        else:
            scores = np.asarray(users[block]) @ items.T
            if what == "product_argpartition":
                top = np.argpartition(-scores, n, axis=1)[:, :n]
                vals = np.take_along_axis(scores, top, axis=1)
                order = np.argsort(-vals, axis=1)
                np.take_along_axis(top, order, axis=1)
        done += len(block)
    return {"users": done, "seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu0}


def ceiling(what: str, version_dir: pathlib.Path, rows: list[int], n: int, processes: int) -> dict[str, Any]:
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    os.environ["OMP_NUM_THREADS"] = "1"
    per = -(-len(rows) // processes)
    start_at = time.time() + 4.0
    jobs = [(what, str(version_dir), rows[i * per : (i + 1) * per], n, start_at) for i in range(processes)]
    with mp.get_context("spawn").Pool(processes) as pool:
        parts = pool.map(_kernel, jobs)
    users = sum(p["users"] for p in parts)
    wall = max(p["seconds"] for p in parts)
    cpu = sum(p["cpu_seconds"] for p in parts)
    return {"what": what, "processes": processes, "blas_threads_each": 1, "block_users": BLOCK, "users": users,
            "wall_s": round(wall, 3), "users_per_s": round(users / wall, 1), "cpu_s": round(cpu, 3),
            "users_per_cpu_s": round(users / cpu, 1)}


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__, time_limit=900)
    p.add_argument("--users", type=int, default=50_000)
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--ceiling-users", type=int, default=20_000, help="users per ceiling measurement")
    p.add_argument("--serve-arg", action="append", default=[], help="extra argument for `serve` (repeatable)")
    p.add_argument("--shapes",
                   default="one_call_shared_port,one_call_per_worker,two_calls_per_worker,four_calls_per_worker")
    p.add_argument("--no-ceilings", action="store_true")
    args = p.parse_args(argv)

    def body(model: bench_model.BenchModel, deadline: scaffold.Deadline, result: dict[str, Any]) -> None:
        user_ids, _ = bench_model.read_ids(model.version_dir)
        rng = random.Random(5)
        chosen = rng.sample(user_ids, min(args.users, len(user_ids)))
        rows = sorted(rng.sample(range(len(user_ids)), min(args.ceiling_users, len(user_ids))))
        rng.shuffle(rows)
        result["settings"] = {"users": len(chosen), "n": args.n, "workers": args.workers,
                              "ceiling_users": len(rows)}
        ceilings = {}
        for what in () if args.no_ceilings else ("product_only", "product_argpartition", "sidecar_kernel"):
            deadline.bound(300)
            ceilings[what] = ceiling(what, model.version_dir, rows, args.n, args.workers)
            scaffold.log("batch_ceiling", what=what, users_per_s=ceilings[what]["users_per_s"])
        result["ceilings"] = ceilings
        grpc_runs = {}
        with bench_model.serve(model, workers=args.workers, log_path=common.RESULTS / "logs" / "batch.log",
                               log_level="warning", extra=args.serve_arg) as sc:
            shapes = {
                "one_call_shared_port": ([sc.address], 1, 1),
                "one_call_per_worker": (sc.worker_addresses, args.workers, 1),
                "two_calls_per_worker": (sc.worker_addresses, 2 * args.workers, 1),
                "four_calls_per_worker": (sc.worker_addresses, 4 * args.workers, 1),
            }
            wanted = args.shapes.split(",")
            for name, (addresses, processes, calls) in shapes.items():
                if name not in wanted:
                    continue
                deadline.bound(300)
                with accounting.CpuMeter(sc.pgid) as cpu:
                    run = loadgen.batch_recommend(addresses, chosen, processes=processes, n=args.n,
                                                  calls_per_process=calls)
                run["cpu"] = cpu.summary(run["client_cpu_s"])
                run["users_per_sidecar_cpu_s"] = round(run["responses"] / run["cpu"]["sidecar_cpu_s"], 1)
                run.pop("parts")
                grpc_runs[name] = run
                scaffold.log("batch_grpc", shape=name, users_per_s=run["users_per_s"], statuses=run["statuses"])
        result["grpc"] = grpc_runs
        result["settings"]["serve_args"] = args.serve_arg
        best_name, best = max(grpc_runs.items(), key=lambda kv: kv[1]["users_per_s"] or 0)
        result["best"] = {"shape": best_name, "users_per_s": best["users_per_s"],
                          **{f"ratio_to_{k}": round(best["users_per_s"] / c["users_per_s"], 3)
                             for k, c in ceilings.items()},
                          # CPU-normalized: users per CPU second, sidecar vs the kernel alone.
                          **{f"cpu_ratio_to_{k}": round(best["users_per_sidecar_cpu_s"] / c["users_per_cpu_s"], 3)
                             for k, c in ceilings.items()}}
        result["target"] = {"goal_users_per_s": 5000, "met": best["users_per_s"] >= 5000
                            and all(r["statuses"] == ["OK"] for r in grpc_runs.values())}

    return common.run("batch_throughput", args, body)


if __name__ == "__main__":
    raise SystemExit(main())
