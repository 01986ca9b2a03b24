"""Both training engines on the same synthetic interactions, in steps (default 1M, 10M, 50M
pairs): wall time, peak memory of the whole process tree (Spark's JVM included) and the held-out
NDCG@10 and recall@10 each recorded in its manifest. Each run is `reco-sidecar train` in its own
process group, so what is measured is what an operator runs.

    python -m bench.training_engines [--steps 1000000,10000000,50000000] [--spark-master local[*]]
    # writes bench/results/training_engines.json

The data is the demo generator's (taste clusters, power-law popularity), scaled so each step
keeps about 25 interactions per user and 1 item per 50 interactions.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time
from typing import Any

from bench import common
from harness import accounting, procs, scaffold


def _data(work: pathlib.Path, pairs: int) -> pathlib.Path:
    from reco_sidecar.training import demo_data

    path = work / f"interactions-{pairs}.csv"
    if not path.exists():
        spec = demo_data.DemoSpec(users=max(1000, pairs // 25), items=max(500, pairs // 50), interactions=pairs,
                                  clusters=16, seed=11)
        demo_data.write(spec, path)
    return path


def _train(cmd: list[str], deadline: scaffold.Deadline) -> dict[str, Any]:
    import subprocess

    started = time.monotonic()
    load_before = os.getloadavg()[0]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            start_new_session=True, text=True)
    try:
        with accounting.MemorySampler(proc.pid, interval=0.5) as memory:
            out, err = proc.communicate(timeout=deadline.bound(7200))
    finally:
        procs.kill_group(proc.pid, grace=2.0)
    wall = time.monotonic() - started
    # The machine's 1-minute load average around the run: wall time stretches with other work,
    # CPU seconds (memory.summary()["cpu_s"]) hardly do.
    load = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    if proc.returncode != 0:
        return {"exit_code": proc.returncode, "stderr_tail": err[-2000:], "wall_s": round(wall, 1), "load_avg": load}
    version_dir = pathlib.Path(out.strip().splitlines()[-1])
    metrics = json.loads((version_dir / "manifest.json").read_text())["metrics"]
    return {"exit_code": 0, "wall_s": round(wall, 1), "load_avg": load, "memory": memory.summary(),
            "ndcg_at_10": metrics.get("ndcg_at_10"), "recall_at_10": metrics.get("recall_at_10"),
            "baseline_ndcg_at_10": metrics.get("baseline_ndcg_at_10")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", default="1000000,10000000,50000000")
    p.add_argument("--engines", default="implicit,spark")
    p.add_argument("--spark-master", default="local[*]")
    p.add_argument("--spark-driver-memory", default="12g")
    p.add_argument("--factors", type=int, default=64)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--time-limit", type=float, default=4 * 3600)
    p.add_argument("--out", type=pathlib.Path, default=common.RESULTS / "training_engines.json")
    args = p.parse_args(argv)
    work = common.RESULTS / "work" / "training_engines"
    work.mkdir(parents=True, exist_ok=True)
    with scaffold.bounded_run(args.out, time_limit=args.time_limit, margin=30,
                              command=["python", "-m", "bench.training_engines", *(argv or sys.argv[1:])]) as run:
        run.record["runs"] = []
        for pairs in [int(s) for s in args.steps.split(",")]:
            data = _data(work, pairs)
            for engine in args.engines.split(","):
                root = work / f"root-{engine}-{pairs}"
                cmd = [sys.executable, "-m", "reco_sidecar", "--log-level", "warning", "train",
                       "--interactions", str(data), "--model-root", str(root), "--name", "bench",
                       "--factors", str(args.factors), "--iterations", str(args.iterations),
                       "--exact-neighbours", "0", "--ann-trees", "10", "--no-progress"]
                if engine == "spark":
                    cmd += ["--engine", "spark", "--spark-master", args.spark_master,
                            "--spark-driver-memory", args.spark_driver_memory]
                result = {"pairs": pairs, "engine": engine, **_train(cmd, run.deadline)}
                scaffold.log("trained", **{k: v for k, v in result.items() if k != "stderr_tail"})
                run.record["runs"].append(result)
                scaffold.write_json(args.out, run.record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
