"""Where a Recommend request's CPU goes besides scoring, and what each piece of observability
costs: ghz sends Recommend for unknown users only (popular items, no matrix product) and for
known users, unthrottled, to the sidecar as configured by default (access log sampled, no
metrics port), with the access log on for every call, with it off, and with the metrics
endpoint on; sidecar CPU per request from /proc, and a py-spy profile (`--gil`: the thread
holding the GIL, i.e. Python work) of one worker of the default configuration, by layer.

    python -m bench.serving_overhead   # writes bench/results/serving_overhead.json
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

from bench import common
from harness import accounting, bench_model, ghz_run, procs, profile, scaffold
from harness.ghz_run import GhzRun
from harness.gotools import find as find_ghz

# The sidecar's observability settings compared (`default`: the access log sampled, no metrics).
CONFIGS: dict[str, list[str]] = {
    "default": [],
    "access-log-on": ["--access-log", "on"],
    "access-log-off": ["--access-log", "off"],
    "metrics-on": ["--metrics-port", "0"],
}

# Inclusive frames that name a layer of the request path (first match from the leaf wins).
LAYERS = (
    ("scoring (Model.recommend)", ("Model.recommend (",)),
    ("popular fallback (Model.popular)", ("Model.popular (",)),
    ("JSON-LD rendering", ("Pages.jsonld (", "Renderer.render (")),
    ("response protos (ScoredItem list)", ("Pages.items (",)),
    ("request validation", ("restriction (requests.py", "recommend_query (", "check_")),
    ("logging (structlog)", ("structlog", "logs.py")),
    ("call gate / counting (handlers, observe, metrics flush)", ("handlers.py", "observe.py", "metrics.py")),
    ("batcher (loop)", ("LoopBatcher.",)),
    ("gRPC Python server", ("_server.py", "grpc/")),
    ("thread pool", ("thread.py",)),
)


def layer_shares(raw_path: Any) -> dict[str, float]:
    counts: dict[str, int] = {}
    total = 0
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        name = "other"
        for frame in reversed(frames):
            hit = next((layer for layer, keys in LAYERS if any(k in frame for k in keys)), None)
            if hit:
                name = hit
                break
        counts[name] = counts.get(name, 0) + count
    return {k: round(v / total, 3) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])} if total else {}


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__, time_limit=900)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, default=16)
    args = p.parse_args(argv)

    def body(model: bench_model.BenchModel, deadline: scaffold.Deadline, result: dict[str, Any]) -> None:
        ghz = find_ghz("ghz", install=True)
        if ghz is None:
            raise RuntimeError("ghz is not installed and go is not available to install it")
        spy = profile.find_py_spy()
        out = common.RESULTS / "serving_overhead"
        data = bench_model.write_data_files(model.version_dir, out, unknown_user_share=0.0)
        runs = []
        for level, extra in CONFIGS.items():
            with bench_model.serve(model, workers=args.workers, extra=extra,
                                   log_path=common.RESULTS / "logs" / f"overhead-{level}.log") as sc:
                flags, source = ghz_run.descriptor_source(ghz, sc.address, out)
                result["ghz_descriptors"] = source
                warmup = GhzRun("warmup", "Recommend", data["Recommend"], rps=300, concurrency=16, connections=8,
                                duration_s=3)
                ghz_run.run_ghz(ghz, flags, sc.address, warmup, out / "warmup.json", deadline)
                for users in ("unknown", "known"):
                    file = data["Recommend-unknown"] if users == "unknown" else data["Recommend"]
                    run = GhzRun(f"{users}-users-{level}", "Recommend", file, rps=0,
                                 concurrency=args.concurrency, connections=4 * args.workers,
                                 duration_s=args.seconds)
                    spy_proc = None
                    raw = out / f"profile-{run.label}.txt"
                    if spy and level == "default":
                        spy_proc = subprocess.Popen(
                            [spy, "record", "--pid", str(sc.worker_pids()[0]), "--gil", "--rate", "250",
                             "--duration", str(int(args.seconds) - 2), "--format", "raw", "--output", str(raw),
                             "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
                        time.sleep(0.3)
                    try:
                        with accounting.CpuMeter(sc.pgid) as cpu:
                            s = ghz_run.run_ghz(ghz, flags, sc.address, run, out / f"ghz-{run.label}.json", deadline)
                    finally:
                        if spy_proc is not None:
                            try:
                                spy_proc.wait(timeout=args.seconds + 20)
                            except subprocess.TimeoutExpired:
                                procs.kill_group(spy_proc.pid, grace=1.0)
                    s["cpu"] = cpu.summary(s["client_cpu_s"])
                    s["sidecar_cpu_ms_per_request"] = round(s["cpu"]["sidecar_cpu_s"] * 1e3 / s["count"], 3)
                    s["config"] = level
                    s["users"] = users
                    if raw.is_file():
                        s["gil_profile_layers"] = layer_shares(raw)
                        s["gil_profile_top"] = profile.summarize(raw, top=15)["self"]
                    runs.append(s)
                    scaffold.log("overhead", label=run.label, rps=s["rps"],
                            cpu_ms=s["sidecar_cpu_ms_per_request"], layers=s.get("gil_profile_layers"))
        result["runs"] = runs
        by = {(r["users"], r["config"]): r["sidecar_cpu_ms_per_request"] for r in runs}
        result["cpu_ms_per_request"] = {f"{u} users, {c}": v for (u, c), v in by.items()}
        costs: dict[str, float] = {}
        for users in ("unknown", "known"):
            for name, (a, b) in {"access log on (every call)": ("access-log-on", "access-log-off"),
                                 "access log sampled (default)": ("default", "access-log-off"),
                                 "metrics endpoint on": ("metrics-on", "default")}.items():
                if (users, a) in by and (users, b) in by:
                    costs[f"{name}, {users} users"] = round(by[(users, a)] - by[(users, b)], 3)
        result["observability_cpu_ms_per_request"] = costs

    return common.run("serving_overhead", args, body)


if __name__ == "__main__":
    raise SystemExit(main())
