"""What an experiment with a shadow arm costs: Recommend requests/s and latency under the same
ghz load, in the same run, for three configurations of the same sidecar, alternating:

- `no_experiment`: no experiments file;
- `experiment`: every user in one experiment whose one served arm is the model itself;
- `experiment_shadow`: the same experiment plus a shadow arm ranking every request again
  with the same model (the most a shadow of that model can cost), off the request path.

The ratios in `comparison` are experiment_shadow / experiment and experiment / no_experiment.
Shadow comparisons done and dropped (queue full) are read from ListExperiments at the end of
each run.

    python -m bench.experiment_shadow [--small] [--seconds 8]  # bench/results/experiment_shadow.json
"""

from __future__ import annotations

import os
import pathlib
import statistics
from typing import Any

from bench import common
from harness import accounting, bench_model, ghz_run, scaffold
from harness.ghz_run import GhzRun
from harness.gotools import find as find_ghz
from reco_sidecar.gen.reco.v1 import reco_pb2


def _file(out: pathlib.Path, name: str, model: str, shadow: bool) -> pathlib.Path:
    arms = [f'{{ name = "control", model = "{model}", weight = 1 }}']
    if shadow:
        arms.append(f'{{ name = "shadow", model = "{model}", shadow = true }}')
    path = out / f"{name}.toml"
    path.write_text(f'[[experiments]]\nname = "bench"\nsalt = "bench-salt"\nshare = 1.0\n'
                    f'arms = [{", ".join(arms)}]\n')
    return path


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__, time_limit=900)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--rate", type=int, default=300, help="fixed-rate run, requests/s")
    p.add_argument("--concurrency", type=int, default=16, help="unthrottled run, ghz -c")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args(argv)

    def body(model: bench_model.BenchModel, deadline: scaffold.Deadline, result: dict[str, Any]) -> None:
        ghz = find_ghz("ghz", install=True)
        if ghz is None:
            raise RuntimeError("ghz is not installed and go is not available to install it")
        out = common.RESULTS / "experiment_shadow"
        out.mkdir(parents=True, exist_ok=True)
        data = bench_model.write_data_files(model.version_dir, out, unknown_user_share=0.0)
        modes = {
            "no_experiment": [],
            "experiment": ["--experiments", str(_file(out, "experiment", model.name, shadow=False))],
            "experiment_shadow": ["--experiments", str(_file(out, "experiment_shadow", model.name, shadow=True))],
        }
        loads = [("rps", args.rate, 32), ("max", 0, args.concurrency)]
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {m: {} for m in modes}
        shadows: dict[str, list[dict[str, int]]] = {}
        for rep in range(args.repeats):
            for mode, extra in modes.items():
                with bench_model.serve(model, workers=args.workers, extra=extra,
                                       log_path=common.RESULTS / "logs" / f"experiment-{mode}.log") as sc:
                    flags, source = ghz_run.descriptor_source(ghz, sc.address, out)
                    result["ghz_descriptors"] = source
                    warmup = GhzRun(f"warmup-{mode}", "Recommend", data["Recommend"], rps=200, concurrency=16,
                                    connections=2 * args.workers, duration_s=2)
                    ghz_run.run_ghz(ghz, flags, sc.address, warmup, out / "warmup.json", deadline)
                    for kind, rps, conc in loads:
                        key = f"rps{rps}" if kind == "rps" else f"max-c{conc}"
                        run = GhzRun(f"{mode}-{key}-r{rep}", "Recommend", data["Recommend"], rps=rps,
                                     concurrency=conc, connections=2 * args.workers, duration_s=args.seconds)
                        with accounting.CpuMeter(sc.pgid) as cpu:
                            s = ghz_run.run_ghz(ghz, flags, sc.address, run, out / f"ghz-{run.label}.json", deadline)
                        s["cpu"] = cpu.summary(s["client_cpu_s"])
                        runs[mode].setdefault(key, []).append(s)
                    counts = {"shadow_scored": 0, "shadow_dropped": 0, "requests": 0}
                    # Any worker's listing has every worker's counts.
                    listing = sc.stub().ListExperiments(reco_pb2.ListExperimentsRequest(), timeout=10)
                    for e in listing.experiments:
                        for arm in e.arms:
                            counts["shadow_scored"] += arm.shadow_scored
                            counts["shadow_dropped"] += arm.shadow_dropped
                            counts["requests"] += arm.requests
                    shadows.setdefault(mode, []).append(counts)
        result["runs"] = runs
        result["experiment_counters"] = shadows

        def med(rs: list[dict[str, Any]], f: str) -> float:
            return float(statistics.median(r[f] if f == "rps" else r["latency_ms"][f] for r in rs))

        comparison = {}
        for key in runs["no_experiment"]:
            base, exp, shadow = (runs[m][key] for m in ("no_experiment", "experiment", "experiment_shadow"))
            comparison[key] = {
                "rps": {m: med(runs[m][key], "rps") for m in modes},
                "p50_ms": {m: med(runs[m][key], "p50") for m in modes},
                "p99_ms": {m: med(runs[m][key], "p99") for m in modes},
                "rps_ratio_shadow_over_experiment": round(med(shadow, "rps") / med(exp, "rps"), 3),
                "p50_ratio_shadow_over_experiment": round(med(shadow, "p50") / med(exp, "p50"), 3),
                "p99_ratio_shadow_over_experiment": round(med(shadow, "p99") / med(exp, "p99"), 3),
                "rps_ratio_experiment_over_none": round(med(exp, "rps") / med(base, "rps"), 3),
                "p99_ratio_experiment_over_none": round(med(exp, "p99") / med(base, "p99"), 3),
                "errors": sum(r["errors"] for r in base + exp + shadow),
            }
            scaffold.log("experiment_shadow", load=key, **{k: v for k, v in comparison[key].items()
                                                          if "ratio" in k or k == "errors"})
        result["comparison"] = comparison

    return common.run("experiment_shadow", args, body)


if __name__ == "__main__":
    raise SystemExit(main())
