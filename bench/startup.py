"""Process start to ready for the benchmark model: from spawning `reco-sidecar serve` to its
JSON ready line on stdout (every worker has loaded, verified and warmed the model and is
serving). The supervisor verifies sha256 checksums before forking; the page cache is warm
after the first start.

    python -m bench.startup [--repeats 5]   # writes bench/results/startup.json
"""

from __future__ import annotations

import contextlib
import statistics
from typing import Any

from bench import common
from loadtest import lib


def worker_load_seconds(address: str) -> float | None:
    from reco_sidecar.gen.reco.v1 import reco_pb2

    s = lib.stub(address)
    try:
        with contextlib.suppress(Exception):
            return float(s.GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=10).load_seconds)
        return None
    finally:
        s.channel.close()


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__, time_limit=600)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--workers", default="2,1", help="worker counts to measure")
    args = p.parse_args(argv)

    def body(model: lib.BenchModel, deadline: lib.Deadline, result: dict[str, Any]) -> None:
        logs = common.RESULTS / "logs"
        result["runs"] = {}
        for workers in [int(w) for w in args.workers.split(",")]:
            times, loads = [], []
            for i in range(args.repeats + 1):  # the first start is reported apart (page cache may be cold)
                deadline.bound(60)
                with lib.running_sidecar(model, workers=workers, log_path=logs / f"startup-w{workers}.log",
                                         log_level="warning") as sc:
                    load = worker_load_seconds(sc.worker_addresses[0])
                    if i == 0:
                        first = sc.ready_seconds
                        continue
                    times.append(sc.ready_seconds)
                    if load is not None:
                        loads.append(load)
            result["runs"][str(workers)] = {
                "workers": workers, "first_start_s": round(first, 3),
                "start_to_ready_s": [round(t, 3) for t in times],
                "median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
                "max_s": round(max(times), 3),
                "worker_model_load_s_median": round(statistics.median(loads), 3) if loads else None,
            }
            lib.log("startup", workers=workers, median_s=result["runs"][str(workers)]["median_s"])
        two = result["runs"].get("2")
        if two:
            result["target"] = {"goal_s": 2.0, "median_s": two["median_s"], "met": two["median_s"] <= 2.0}

    return common.run("startup", args, body)


if __name__ == "__main__":
    raise SystemExit(main())
