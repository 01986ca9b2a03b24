"""Load test of the sidecar with ghz: fixed-rate steps and a find-the-maximum run per RPC, the
in-process ceiling, and a reload storm under load, with a summary JSON and a Markdown report.

    python -m loadtest.run                 # the benchmark model (200k users x 100k items x 64)
    python -m loadtest.run --smoke         # the CI smoke profile (small model, a few seconds per RPC)

Use loadtest/run.sh (hard time bound, ghz install). Every run has a time limit; the sidecar's
process group is killed at the end whatever happens. Results go to loadtest/results/<stamp>/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import sys
import time
from typing import Any

from harness import profile
from harness.accounting import CpuMeter, tree_memory
from harness.bench_model import SMOKE_SPEC, BenchModel, ModelSpec, ensure_model, serve, write_data_files
from harness.ghz_run import GhzRun, descriptor_source, run_ghz
from harness.gotools import PINNED
from harness.gotools import find as find_ghz
from harness.paths import ROOT, WORK, python_env
from harness.procs import run_bounded
from harness.scaffold import Deadline, bounded_run, log
from loadtest.reload_storm import reload_storm
from loadtest.targets import analysis, cpu_efficiency, ratio_to_ceiling, targets

RESULTS = ROOT / "loadtest" / "results"
CALLS = ("Recommend", "Similar", "BatchRecommend")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="small model, short runs, exit 1 on any non-OK status")
    p.add_argument("--work-dir", type=pathlib.Path, default=WORK, help="cached models live here")
    p.add_argument("--rebuild-model", action="store_true",
                   help="train the cached model again with this code (after a format or trainer change)")
    p.add_argument("--out-dir", type=pathlib.Path, help="default: loadtest/results/<UTC stamp>")
    p.add_argument("--time-limit", type=float, default=2700.0, help="hard bound on the whole run, seconds")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--connections", type=int, help="ghz connections (default 4 x workers)")
    p.add_argument("--calls", default=",".join(CALLS))
    p.add_argument("--rates", default="250,500,1000,2000", help="fixed-rate steps, requests/s")
    p.add_argument("--step-seconds", type=float, default=12.0)
    p.add_argument("--step-concurrency", type=int, default=50, help="ghz -c for fixed-rate steps")
    p.add_argument("--max-concurrency", default="4,16,48", help="ghz -c of the unthrottled runs ('' skips)")
    p.add_argument("--max-seconds", type=float, default=10.0)
    p.add_argument("--closed-loop", default="1,4,8",
                   help="Recommend closed-loop callers, one run each ('' skips): the loads where a batcher "
                        "that waits for company costs latency (bench/floor_vs_sidecar.py has the floors' rows)")
    p.add_argument("--unknown-user-share", type=float, default=0.05,
                   help="share of unknown user ids (answered with popular items, status OK)")
    p.add_argument("--unknown-item-share", type=float, default=0.0,
                   help="share of unknown item ids in Similar (answered NOT_FOUND, counted as expected)")
    p.add_argument("--batch-users", type=int, default=10, help="users per BatchRecommend request")
    p.add_argument("--reload-rates", default="1000,400",
                   help="Recommend rates of the reload runs, comma-separated ('' skips); the first is the target's")
    p.add_argument("--reload-seconds", type=float, default=24.0)
    p.add_argument("--reload-every", type=float, default=3.0)
    p.add_argument("--ceiling-seconds", type=float, default=4.0, help="per measurement (0 skips)")
    p.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True,
                   help="py-spy a worker during the top unthrottled Recommend run")
    p.add_argument("--server-log-level", default="info")
    p.add_argument("--serve-arg", action="append", default=[], help="extra argument for `serve` (repeatable)")
    args = p.parse_args(argv)
    if args.smoke:
        p.set_defaults(rates="200", step_seconds=3.0, max_concurrency="", closed_loop="", reload_rates="200",
                       reload_seconds=4.0, reload_every=1.5, ceiling_seconds=0.0, profile=False, time_limit=240.0,
                       unknown_item_share=0.0, step_concurrency=10)
        args = p.parse_args(argv)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + ("-smoke" if args.smoke else "")
    out = args.out_dir or RESULTS / stamp
    out.mkdir(parents=True, exist_ok=True)
    log("loadtest_start", out=str(out), smoke=args.smoke)
    command = ["loadtest/run.sh", *(argv if argv is not None else sys.argv[1:])]
    settings = {k: str(v) if isinstance(v, pathlib.Path) else v for k, v in vars(args).items()}
    with bounded_run(out / "summary.json", time_limit=args.time_limit, margin=20, command=command,
                     kind="smoke" if args.smoke else "full", settings=settings, runs=[]) as run:
        summary = run.record
        run.before_write.append(lambda s: s.update(targets=targets(s)))
        run.before_write.append(lambda s: s.update(analysis=analysis(s)))
        run_all(args, out, run.deadline, summary)
    with contextlib.suppress(Exception):
        from loadtest import report

        report.write(summary, out)
    latest = RESULTS / ("latest-smoke" if args.smoke else "latest")
    with contextlib.suppress(OSError):
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        latest.symlink_to(out.resolve())
    non_ok = [r["label"] for r in summary["runs"] if r.get("errors") or (args.smoke and r.get("expected_non_ok"))]
    if summary["failures"]:
        return 2
    if args.smoke and non_ok:
        log("smoke_non_ok", runs=non_ok)
        return 1
    return 0


def run_all(args: argparse.Namespace, out: pathlib.Path, deadline: Deadline, summary: dict[str, Any]) -> None:
    ghz = find_ghz("ghz", install=True)
    if ghz is None:
        raise RuntimeError("ghz is not installed and go is not available to install it")
    summary["ghz"] = {"path": ghz, "module": PINNED["ghz"]}
    spec = SMOKE_SPEC if args.smoke else ModelSpec()
    model = ensure_model(args.work_dir, spec, deadline, rebuild=args.rebuild_model)
    summary["model"] = model.describe()
    data = write_data_files(model.version_dir, out / "data", unknown_user_share=args.unknown_user_share,
                                unknown_item_share=args.unknown_item_share, batch_users=args.batch_users)
    if args.ceiling_seconds > 0:
        summary["ceiling"] = ceiling(model, args, out, deadline)
    connections = args.connections or 4 * args.workers
    calls = [c for c in args.calls.split(",") if c]
    rates = [int(r) for r in args.rates.split(",") if r]
    concurrencies = [int(c) for c in args.max_concurrency.split(",") if c]
    closed_loop = [int(c) for c in args.closed_loop.split(",") if c]
    with serve(model, workers=args.workers, log_path=out / "sidecar.log", extra=args.serve_arg,
               log_level=args.server_log_level) as sc:
        summary["sidecar"] = {"ready": sc.ready, "start_to_ready_s": round(sc.ready_seconds, 3),
                              "memory_after_ready": tree_memory(sc.pgid)}
        flags, source = descriptor_source(ghz, sc.address, out)
        summary["ghz"].update(source)

        def ghz_run(run: GhzRun, kind: str, **extra: Any) -> dict[str, Any]:
            with CpuMeter(sc.pgid) as cpu:
                result = run_ghz(ghz, flags, sc.address, run, out / f"ghz-{run.label}.json", deadline)
            result.update(kind=kind, cpu=cpu.summary(result["client_cpu_s"]), **extra)
            workers = [v for pid, v in result["cpu"]["sidecar_cpu_per_pid"].items() if int(pid) != sc.pgid]
            # SO_REUSEPORT spreads connections by hash: how evenly the workers were loaded.
            result["worker_cpu_balance"] = round(min(workers) / max(workers), 3) if workers and max(workers) else None
            result["sidecar_cpu_ms_per_request"] = (round(result["cpu"]["sidecar_cpu_s"] * 1e3 / result["count"], 3)
                                                    if result["count"] else None)
            result["ratio_to_ceiling"] = ratio_to_ceiling(result, summary.get("ceiling"))
            result["cpu_efficiency"] = cpu_efficiency(result, summary.get("ceiling"))
            summary["runs"].append(result)
            return result

        for call in calls:
            expected = ("NOT_FOUND",) if call == "Similar" and args.unknown_item_share > 0 else ()
            common = dict(call=call, data_file=data[call], connections=connections, expected_codes=expected)
            if not args.smoke:  # warm-up, not recorded
                run_ghz(ghz, flags, sc.address, GhzRun(f"warmup-{call}", rps=300, concurrency=16,
                                                       duration_s=3, **common),
                            out / f"ghz-warmup-{call}.json", deadline)
            if call == "Recommend":
                # one connection per caller, each sending its next call when the last is answered
                for callers in closed_loop:
                    ghz_run(GhzRun(f"Recommend-closed-c{callers}", rps=0, concurrency=callers,
                                   duration_s=args.max_seconds, **dict(common, connections=callers)), "closed_loop")
            for rate in rates:
                ghz_run(GhzRun(f"{call}-rps{rate}", rps=rate, concurrency=args.step_concurrency,
                               duration_s=args.step_seconds, **common), "fixed_rate")
            if call == "Recommend" and concurrencies:
                # Unknown users only: popular items, no scoring. What a request costs besides scoring.
                probe = dict(common, data_file=data["Recommend-unknown"])
                ghz_run(GhzRun("Recommend-unknown-users-max-c16", rps=0, concurrency=16,
                               duration_s=min(args.max_seconds, 8), **probe), "overhead_probe")
            for conc in concurrencies:
                run = GhzRun(f"{call}-max-c{conc}", rps=0, concurrency=conc, duration_s=args.max_seconds, **common)
                profiling = args.profile and call == "Recommend" and conc == max(concurrencies)
                worker = next(iter(sc.worker_pids()), None)
                with profile.recording(worker, out, run.duration_s, enabled=profiling) as prof:
                    result = ghz_run(run, "unthrottled")
                if prof:
                    result["profile"] = prof
                    summary["profile"] = prof
        reload_rates = [int(r) for r in args.reload_rates.split(",") if r]
        if reload_rates and "Recommend" in calls:
            summary["reload_runs"] = []
            for rate in reload_rates:
                result = reload_storm(sc, model, args, rate, deadline, ghz_run, data["Recommend"], connections)
                summary["reload_runs"].append(result)
                summary.setdefault("reload", result)


def ceiling(model: BenchModel, args: argparse.Namespace, out: pathlib.Path,
            deadline: Deadline) -> dict[str, Any]:
    path = out / "ceiling.json"
    cmd = [sys.executable, "-m", "loadtest.ceiling", "--version-dir", str(model.version_dir),
           "--seconds", str(args.ceiling_seconds), "--workers", str(args.workers),
           "--batch-users", str(args.batch_users), "--out", str(path)]
    log("ceiling_start")
    code, _, err, _ = run_bounded(cmd, deadline.bound(300), env=python_env(), cwd=ROOT)
    if code != 0:
        raise RuntimeError(f"ceiling measurement failed: {err[-2000:]}")
    result: dict[str, Any] = json.loads(path.read_text())
    log("ceiling_done", recommend_rps=result["recommend"]["ceiling_rps"], similar_rps=result["similar"]["ceiling_rps"])
    return result


if __name__ == "__main__":
    raise SystemExit(main())
