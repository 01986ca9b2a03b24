"""Dynamic batching gain: Recommend requests/s and p99 with the batcher off
(`--batch-max-size 1`) and on (the default), under the same ghz load in the same run, the two
configurations alternating.

    python -m bench.batching_gain [--repeats 1]   # writes bench/results/batching_gain.json
"""

from __future__ import annotations

import os
import statistics
from typing import Any

from bench import common
from harness import accounting, bench_model, ghz_run, scaffold
from harness.ghz_run import GhzRun
from harness.gotools import find as find_ghz

MODES = {"batching_off": ["--batch-max-size", "1"], "batching_default": []}


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__, time_limit=1200)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--rate", type=int, default=1000, help="fixed-rate run, requests/s")
    p.add_argument("--concurrency", default="8,32", help="unthrottled runs, ghz -c")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--unknown-user-share", type=float, default=0.05)
    args = p.parse_args(argv)

    def body(model: bench_model.BenchModel, deadline: scaffold.Deadline, result: dict[str, Any]) -> None:
        ghz = find_ghz("ghz", install=True)
        if ghz is None:
            raise RuntimeError("ghz is not installed and go is not available to install it")
        out = common.RESULTS / "batching_gain"
        data = bench_model.write_data_files(model.version_dir, out, unknown_user_share=args.unknown_user_share)
        connections = 4 * args.workers
        loads = [("rps", args.rate, 50)] + [("max", 0, int(c)) for c in args.concurrency.split(",") if c]
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {m: {} for m in MODES}
        for rep in range(args.repeats):
            for mode, extra in MODES.items():
                with bench_model.serve(model, workers=args.workers, extra=extra,
                                       log_path=common.RESULTS / "logs" / f"batching-{mode}.log") as sc:
                    flags, source = ghz_run.descriptor_source(ghz, sc.address, out)
                    result["ghz_descriptors"] = source
                    warmup = GhzRun(f"warmup-{mode}", "Recommend", data["Recommend"], rps=300, concurrency=16,
                                    connections=connections, duration_s=3)
                    ghz_run.run_ghz(ghz, flags, sc.address, warmup, out / "warmup.json", deadline)
                    for kind, rps, conc in loads:
                        key = f"rps{rps}" if kind == "rps" else f"max-c{conc}"
                        run = GhzRun(f"{mode}-{key}-r{rep}", "Recommend", data["Recommend"], rps=rps,
                                     concurrency=conc, connections=connections, duration_s=args.seconds)
                        with accounting.CpuMeter(sc.pgid) as cpu:
                            s = ghz_run.run_ghz(ghz, flags, sc.address, run, out / f"ghz-{run.label}.json", deadline)
                        s["cpu"] = cpu.summary(s["client_cpu_s"])
                        runs[mode].setdefault(key, []).append(s)
        result["runs"] = runs
        comparison = {}
        for key in runs["batching_off"]:
            off = runs["batching_off"][key]
            on = runs["batching_default"][key]

            def med(rs: list[dict[str, Any]], f: str) -> float:
                return float(statistics.median(r[f] if f == "rps" else r["latency_ms"][f] for r in rs))

            comparison[key] = {
                "off_rps": med(off, "rps"), "default_rps": med(on, "rps"),
                "rps_gain": round(med(on, "rps") / med(off, "rps"), 3),
                "off_p99_ms": med(off, "p99"), "default_p99_ms": med(on, "p99"),
                "p99_ratio_default_over_off": round(med(on, "p99") / med(off, "p99"), 3),
                "off_p50_ms": med(off, "p50"), "default_p50_ms": med(on, "p50"),
                "errors": sum(r["errors"] for r in off + on),
            }
            scaffold.log("batching_gain", load=key, **comparison[key])
        result["comparison"] = comparison

    return common.run("batching_gain", args, body)


if __name__ == "__main__":
    raise SystemExit(main())
