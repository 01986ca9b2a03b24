"""What tracing costs a Recommend: sidecar CPU per call at concurrency 32 (known users, the
scoring path) with tracing off and with tracing on at sample ratio 1.0 (every call a server
span with its batch.wait, score and render spans, exported over OTLP/gRPC to a real Jaeger),
in one run, alternating off / on for `--rounds` rounds. The ratio is each configuration's
median CPU per call over the first configuration's; the second "off" sidecar, started like the
first, shows what the noise alone gives (1.00x within it).

    python -m bench.tracing_cost   # writes bench/results/tracing_cost.json
    python -m bench.tracing_cost --rps 300 --out bench/results/tracing_cost_rps300.json

Jaeger's own CPU is not counted (its own process group): only the sidecar's tree is metered.
"""

from __future__ import annotations

import os
import statistics
from typing import Any

from bench import common
from bench.floor_vs_sidecar import batch_counts, batching
from harness import accounting, bench_model, ghz_run, scaffold
from harness.ghz_run import GhzRun
from harness.gotools import find as find_ghz
from harness.jaeger import jaeger_binary, running_jaeger

TARGET_RATIO = 1.15


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__, time_limit=900)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--rounds", type=int, default=2)
    # 0: closed loop, as many calls as `--concurrency` callers get through. A rate every
    # configuration sustains gives each the same load, so the batcher forms the same batches
    # and the CPU per call compares per-call work alone (at saturation a slower configuration
    # forms smaller batches, which by itself costs more per call).
    p.add_argument("--rps", type=int, default=0, help="offered calls per second (0: closed loop)")
    args = p.parse_args(argv)

    def body(model: bench_model.BenchModel, deadline: scaffold.Deadline, result: dict[str, Any]) -> None:
        ghz = find_ghz("ghz", install=True)
        if ghz is None:
            raise RuntimeError("ghz is not installed and go is not available to install it")
        jaeger = jaeger_binary()
        if jaeger is None:
            raise RuntimeError("jaeger is not built (bash scripts/jaeger.sh)")
        out = common.RESULTS / "tracing_cost"
        data = bench_model.write_data_files(model.version_dir, out, unknown_user_share=0.0)
        result["offered_rps"] = args.rps or "closed loop"
        result["machine_note"] = ("2 cores shared with other work: ratios within one run, alternating "
                                  "configurations, are comparable; absolute figures are noisy")
        with running_jaeger(jaeger) as collector:
            configs: dict[str, list[str]] = {
                "off": [],
                "on-ratio-1.0": ["--otlp-endpoint", collector.otlp_endpoint, "--trace-sample-ratio", "1.0"],
                "off-again": [],
            }
            runs: list[dict[str, Any]] = []
            for round_no in range(args.rounds):
                for name, extra in configs.items():
                    log_path = common.RESULTS / "logs" / f"tracing-{name}-{round_no}.log"
                    # --metrics-port: the batcher's counters around each run (mean batch size),
                    # since a configuration that gets fewer calls through forms smaller batches
                    with bench_model.serve(model, workers=args.workers, extra=[*extra, "--metrics-port", "0"],
                                           log_path=log_path) as sc:
                        server = {"metrics_port": next(e["port"] for e in sc.log_events()
                                                       if e.get("event") == "metrics_serving")}
                        flags, _ = ghz_run.descriptor_source(ghz, sc.address, out)
                        warmup = GhzRun("warmup", "Recommend", data["Recommend"], rps=300, concurrency=16,
                                        connections=8, duration_s=2)
                        ghz_run.run_ghz(ghz, flags, sc.address, warmup, out / "warmup.json", deadline)
                        run = GhzRun(f"{name}-{round_no}", "Recommend", data["Recommend"], rps=args.rps,
                                     concurrency=args.concurrency, connections=4 * args.workers,
                                     duration_s=args.seconds)
                        before = batch_counts(server)
                        with accounting.CpuMeter(sc.pgid) as cpu:
                            s = ghz_run.run_ghz(ghz, flags, sc.address, run, out / f"ghz-{run.label}.json",
                                                deadline)
                        s["batching"] = batching(before, batch_counts(server))
                        s["cpu"] = cpu.summary(s["client_cpu_s"])
                        s["sidecar_cpu_ms_per_request"] = round(s["cpu"]["sidecar_cpu_s"] * 1e3 / s["count"], 4)
                        s["config"], s["round"] = name, round_no
                        runs.append(s)
                        scaffold.log("tracing_cost", label=run.label, rps=s["rps"],
                                     cpu_ms=s["sidecar_cpu_ms_per_request"], errors=s.get("errors"),
                                     mean_batch=(s["batching"] or {}).get("mean_batch"))
            received = "reco-sidecar" in collector.services()
        result["runs"] = runs
        result["jaeger_received_the_sidecars_spans"] = received
        medians = {name: statistics.median(r["sidecar_cpu_ms_per_request"] for r in runs if r["config"] == name)
                   for name in configs}
        base = medians["off"]
        result["cpu_ms_per_request_median"] = {k: round(v, 4) for k, v in medians.items()}
        result["ratio_to_off"] = {k: round(v / base, 3) for k, v in medians.items()}
        result["target"] = {"on-ratio-1.0": f"<= {TARGET_RATIO}x", "off-again": "1.00x within noise"}
        result["met"] = medians["on-ratio-1.0"] / base <= TARGET_RATIO

    return common.run("tracing_cost", args, body)


if __name__ == "__main__":
    raise SystemExit(main())
