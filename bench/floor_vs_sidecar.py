"""The sidecar against the floor (bench/floor_server.py), in one run, on the benchmark model.

Servers take turns (never two at once): the floor inline, the floor loop-batched, the
sidecar (all features on: auth off, the access log at its default), and with `--policies`
the sidecar under each other batch wait policy, for `--rounds` rounds (odd rounds in the
reverse order, so no server always runs first). Each turn drives the server with ghz on
loopback (short runs, `--seconds` each):

- Recommend, closed loop at 1, 4 and 8 callers: RPS and p50 (where a batcher that waits for
  company that cannot come loses against the inline floor). The callers are spread evenly
  over every worker's own address, one ghz per worker (every server has them: the sidecar's
  workers and the floors' each bind one): on the shared port the kernel would place these
  few connections by a hash, 4 of them all on one worker 1 time in 8;
- Recommend, closed loop at 32 concurrent: RPS and server CPU ms per request;
- Recommend offered at 500 and 1,000 RPS: p99 and CPU ms per request;
- Similar, closed loop at 32 and offered at 500 and 1,000 RPS;

and, for the sidecar, one BatchRecommend call (users/s, n=10, `users_per_message` 0 and
256), beside the in-process kernel on the same users (Model.recommend in chunks, the floor
of that figure). Every sidecar figure is reported as a ratio to the floor's of the same
round. With `--profile`, a py-spy `--native` profile of one sidecar worker during one run
(`--profile-run`, the c32 Recommend run by default).

The sidecar runs with `--metrics-port 0`: around each run its batching counters are read
(`batching`: calls scored, batches, mean batch size, share of batches that waited), counts
that other load on the machine does not move. `medians` in the result JSON holds, per
server and run, the median over the rounds of each figure and of each per-round ratio to
the floors.

    python -m bench.floor_vs_sidecar [--seconds 10] [--rounds 1]   # bench/results/floor_vs_sidecar.json
    python -m bench.floor_vs_sidecar --seconds 5 --rounds 3 --policies timer,aimd,budget \
        --runs recommend-c1,recommend-c4,recommend-c8,recommend-c32,recommend-500rps,recommend-1000rps
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

from bench import common
from harness import accounting, bench_model, ghz_run, procs, profile, scaffold
from harness.bench_model import BenchModel
from harness.ghz_run import GhzRun
from harness.gotools import find as find_ghz
from harness.paths import ROOT, python_env
from harness.scaffold import Deadline
from harness.sidecar import recommender

Turn = tuple[str, list[str]]


@contextlib.contextmanager
def floor(model: BenchModel, batch_wait_ms: float | None, log_path: pathlib.Path) -> Iterator[dict[str, Any]]:
    cmd = [sys.executable, "-m", "bench.floor_server", "--model-dir", str(model.version_dir), "--workers", "2"]
    if batch_wait_ms is not None:
        cmd += ["--batch-wait-ms", str(batch_wait_ms)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, start_new_session=True, cwd=ROOT,
                                env=python_env(OMP_NUM_THREADS="1"))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"floor server did not start: {log_path.read_text()[-1500:]}")
        ready = json.loads(line)
        yield {"address": f"127.0.0.1:{ready['port']}", "pgid": proc.pid, "pids": ready["pids"],
               "worker_addresses": [f"127.0.0.1:{p}" for p in ready["worker_ports"]]}
    finally:
        procs.kill_group(proc.pid, grace=2.0)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


@contextlib.contextmanager
def sidecar(model: BenchModel, log_path: pathlib.Path, policy: str | None = None) -> Iterator[dict[str, Any]]:
    # "off": the batcher off (--batch-max-size 1), each call scored alone on the loop
    extra = ([] if policy is None else ["--batch-max-size", "1"] if policy == "off" else
             ["--batch-wait-policy", policy])
    with bench_model.serve(model, workers=2, log_path=log_path, extra=[*extra, "--metrics-port", "0"]) as sc:
        port = next(e["port"] for e in sc.log_events() if e.get("event") == "metrics_serving")
        yield {"address": sc.address, "pgid": sc.pgid, "pids": sc.worker_pids(), "metrics_port": port,
               "worker_addresses": sc.worker_addresses}


BATCH_SERIES = ("reco_batch_size_sum", "reco_batch_size_count", "reco_batch_waits_total")


def batch_counts(server: dict[str, Any]) -> dict[str, float]:
    """The sidecar's batching counters (summed over its workers), read from /metrics; the
    floors have none. Counts, not times: they do not move with other load on the machine."""
    port = server.get("metrics_port")
    if port is None:
        return {}
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples
            if s.name in BATCH_SERIES}


def batching(before: dict[str, float], after: dict[str, float]) -> dict[str, Any] | None:
    """Calls scored, batches, mean batch size and the share of batches that waited, between two reads."""
    if not before and not after:
        return None
    d = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in BATCH_SERIES}
    batches = d["reco_batch_size_count"]
    return {"calls_scored": int(d["reco_batch_size_sum"]), "batches": int(batches),
            "mean_batch": round(d["reco_batch_size_sum"] / batches, 2) if batches else None,
            "waited_share": round(d["reco_batch_waits_total"] / batches, 3) if batches else None}


def drive(ghz: str, flags: list[str], server: dict[str, Any], run: GhzRun, out: pathlib.Path,
          deadline: Deadline) -> dict[str, Any]:
    before = batch_counts(server)
    with accounting.CpuMeter(server["pgid"]) as cpu:
        if run.spread:
            s = ghz_run.run_ghz_spread(ghz, flags, server["worker_addresses"], run, out / f"ghz-{run.label}.json",
                                       deadline)
        else:
            s = ghz_run.run_ghz(ghz, flags, server["address"], run, out / f"ghz-{run.label}.json", deadline)
    s["cpu"] = cpu.summary(s["client_cpu_s"])
    s["cpu_ms_per_request"] = round(s["cpu"]["sidecar_cpu_s"] * 1e3 / s["count"], 3) if s["count"] else None
    # workers flush their counts to /metrics about once a second
    time.sleep(1.5 if before else 0)
    s["batching"] = batching(before, batch_counts(server))
    return {k: s[k] for k in ("label", "count", "rps", "errors", "status_codes", "latency_ms",
                              "cpu_ms_per_request", "cpu", "batching")}


def batch_call(address: str, users: list[str], per_message: int) -> dict[str, Any]:
    from reco_sidecar.gen.reco.v1 import reco_pb2

    with recommender(address, **{"grpc.max_receive_message_length": 64 << 20}) as stub:
        started = time.perf_counter()
        answered = 0
        for message in stub.BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=users, n=10,
                                                                           users_per_message=per_message),
                                           timeout=300):
            answered += len(message.users) if message.users else 1
        seconds = time.perf_counter() - started
    return {"users": answered, "seconds": round(seconds, 3), "users_per_s": round(answered / seconds, 1)}


def kernel_rate(model: BenchModel, users: list[str], chunk: int = 512) -> dict[str, Any]:
    """The same users through Model.recommend in chunks, in this process, one BLAS thread."""
    from threadpoolctl import threadpool_limits

    from reco_sidecar.artifact import loader
    from reco_sidecar.engine.query import RecQuery, Restriction

    with threadpool_limits(1):
        m = loader.open_model(model.version_dir, checksums_too=False)
        none = Restriction.none()
        rows = [m.users.row(u) for u in users]
        m.recommend([RecQuery(0, 10, none, user_row=r) for r in rows[:chunk] if r is not None])
        started = time.perf_counter()
        for i in range(0, len(rows), chunk):
            m.recommend([RecQuery(0, 10, none, user_row=r) for r in rows[i : i + chunk] if r is not None])
        seconds = time.perf_counter() - started
    return {"users": len(rows), "seconds": round(seconds, 3), "users_per_s": round(len(rows) / seconds, 1)}


def start_profile(spy: str | None, pid: int, seconds: float, raw: pathlib.Path) -> subprocess.Popen[bytes] | None:
    """py-spy --native (which cannot be --nonblocking: it pauses the worker for each sample)."""
    if spy is None:
        return None
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--native", "--rate", "200",
                             "--duration", str(max(1, int(seconds) - 2)), "--format", "raw", "--output", str(raw)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__, time_limit=1500)
    p.add_argument("--seconds", type=float, default=10.0, help="length of each ghz run")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--batch-wait-ms", type=float, default=2.0, help="the batched floor's wait")
    p.add_argument("--batch-users", type=int, default=20_000)
    p.add_argument("--profile", action="store_true", help="py-spy --native of a sidecar worker (its first)")
    p.add_argument("--profile-run", default="recommend-c32", help="the run label --profile records")
    p.add_argument("--only", default="", help="comma-separated turns to run (floor-inline,floor-batched,sidecar)")
    p.add_argument("--policies", default="",
                   help="comma-separated batch wait policies to run as more sidecar turns (sidecar-<policy>; "
                        "'off' for --batch-max-size 1)")
    p.add_argument("--runs", default="", help="comma-separated run labels (default: all; 'batch' for the "
                                              "BatchRecommend calls)")
    args = p.parse_args(argv)

    def body(model: BenchModel, deadline: Deadline, result: dict[str, Any]) -> None:
        ghz = find_ghz("ghz")
        if ghz is None:
            raise RuntimeError("ghz is not installed")
        out = common.RESULTS / "floor_vs_sidecar"
        out.mkdir(parents=True, exist_ok=True)
        data = bench_model.write_data_files(model.version_dir, out, unknown_user_share=0.0)
        flags = ["--protoset", str(ghz_run.protoset(out))]
        spy = profile.find_py_spy() if args.profile else None
        users_all, _ = bench_model.read_ids(model.version_dir)
        batch_users = [users_all[(i * 7919) % len(users_all)] for i in range(args.batch_users)]
        secs = args.seconds
        runs = [
            # a few callers spread over every worker's own address (GhzRun.spread)
            *(GhzRun(f"recommend-c{c}", "Recommend", data["Recommend"], concurrency=c, connections=c,
                     duration_s=secs, spread=True) for c in CLOSED_LOOP_CALLERS),
            GhzRun("recommend-c32", "Recommend", data["Recommend"], concurrency=32, connections=8, duration_s=secs),
            GhzRun("recommend-500rps", "Recommend", data["Recommend"], rps=500, concurrency=32, connections=8,
                   duration_s=secs),
            GhzRun("recommend-1000rps", "Recommend", data["Recommend"], rps=1000, concurrency=64, connections=8,
                   duration_s=secs),
            GhzRun("similar-c32", "Similar", data["Similar"], concurrency=32, connections=8, duration_s=secs),
            GhzRun("similar-500rps", "Similar", data["Similar"], rps=500, concurrency=32, connections=8,
                   duration_s=secs),
            GhzRun("similar-1000rps", "Similar", data["Similar"], rps=1000, concurrency=64, connections=8,
                   duration_s=secs),
        ]
        wanted = set(filter(None, args.runs.split(",")))
        if wanted:
            runs = [r for r in runs if r.label in wanted]
        batch_calls = not wanted or "batch" in wanted
        turns = ["floor-inline", "floor-batched", "sidecar",
                 *(f"sidecar-{p}" for p in filter(None, args.policies.split(",")))]
        if args.only:
            turns = [t for t in turns if t in args.only.split(",")]
        rounds: list[dict[str, Any]] = []
        result["rounds"] = rounds
        result["note"] = ("the machine was shared with other engineers' work during the run; "
                          "system CPU busy is recorded per run (cpu.machine_cores_busy)")
        for r in range(args.rounds):
            this: dict[str, Any] = {}
            rounds.append(this)
            for turn in (turns if r % 2 == 0 else turns[::-1]):
                log_path = common.RESULTS / "logs" / f"floor-vs-{turn}-{r}.log"
                starter = (sidecar(model, log_path, turn.removeprefix("sidecar-") if "-" in turn else None)
                           if turn.startswith("sidecar") else
                           floor(model, None if turn == "floor-inline" else args.batch_wait_ms, log_path))
                figures: dict[str, Any] = {}
                this[turn] = figures
                with starter as server:
                    ghz_run.run_ghz(ghz, flags, server["address"],
                                GhzRun("warmup", "Recommend", data["Recommend"], rps=300, concurrency=16,
                                       connections=8, duration_s=3), out / "warmup.json", deadline)
                    for run in runs:
                        spy_proc = None
                        raw = out / f"profile-{turn}-{run.label}.txt"
                        if turn == "sidecar" and run.label == args.profile_run:
                            spy_proc = start_profile(spy, server["pids"][0], secs, raw)
                        try:
                            figures[run.label] = drive(ghz, flags, server, run, out, deadline)
                        finally:
                            if spy_proc is not None:
                                with contextlib.suppress(subprocess.TimeoutExpired):
                                    spy_proc.wait(secs + 30)
                        if raw.is_file():
                            figures[run.label]["profile"] = profile.summarize(raw, top=25)
                        scaffold.log("floor_vs_sidecar", turn=turn, run=run.label, rps=figures[run.label]["rps"],
                                p99=figures[run.label]["latency_ms"]["p99"],
                                cpu_ms=figures[run.label]["cpu_ms_per_request"])
                    if turn == "sidecar" and batch_calls:
                        for per_message in (0, 256):
                            figures[f"batch-{per_message}"] = batch_call(server["address"], batch_users, per_message)
                            scaffold.log("floor_vs_sidecar", turn=turn, run=f"batch-{per_message}",
                                    users_per_s=figures[f"batch-{per_message}"]["users_per_s"])
            if batch_calls:
                this["batch-kernel-in-process"] = kernel_rate(model, batch_users)
            result["ratios"] = ratios(rounds)
            result["medians"] = medians(rounds)

    return common.run("floor_vs_sidecar", args, body)


CLOSED_LOOP_CALLERS = (1, 4, 8)
FLOORS = ("floor-inline", "floor-batched")


def _round_ratios(side: dict[str, Any], floor_figures: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for label, s in side.items():
        f = floor_figures.get(label)
        if not isinstance(s, dict) or not isinstance(f, dict) or "latency_ms" not in s:
            continue
        row[label] = {
            "rps": _ratio(s["rps"], f["rps"]),
            "cpu_ms_per_request": _ratio(s["cpu_ms_per_request"], f["cpu_ms_per_request"]),
            "p50": _ratio(s["latency_ms"]["p50"], f["latency_ms"]["p50"]),
            "p99": _ratio(s["latency_ms"]["p99"], f["latency_ms"]["p99"]),
        }
    return row


def ratios(rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """sidecar / floor for each figure, per round, sidecar turn and floor form."""
    out = []
    for this in rounds:
        side = this.get("sidecar") or {}
        for turn in sorted(t for t in this if t.startswith("sidecar")):
            for form in FLOORS:
                out.append({"sidecar": turn, "floor": form, **_round_ratios(this[turn], this.get(form) or {})})
        kernel = this.get("batch-kernel-in-process", {}).get("users_per_s")
        for key in ("batch-0", "batch-256"):
            if key in side and kernel:
                out.append({"batch": key, "users_per_s_vs_kernel": _ratio(side[key]["users_per_s"], kernel)})
    return out


def medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per server turn and run: the median over the rounds of RPS, p50, p99 and CPU per request,
    and of each per-round ratio to the two floors."""
    out: dict[str, Any] = {}
    turns = sorted({t for this in rounds for t in this if t.startswith(("floor", "sidecar"))})
    for turn in turns:
        labels = sorted({label for this in rounds for label, v in (this.get(turn) or {}).items()
                         if isinstance(v, dict) and "latency_ms" in v})
        figures: dict[str, Any] = {}
        for label in labels:
            runs = [this[turn][label] for this in rounds if label in (this.get(turn) or {})]
            row: dict[str, Any] = {
                "rounds": len(runs),
                "rps": _median([r["rps"] for r in runs]),
                "p50": _median([r["latency_ms"]["p50"] for r in runs]),
                "p99": _median([r["latency_ms"]["p99"] for r in runs]),
                "cpu_ms_per_request": _median([r["cpu_ms_per_request"] for r in runs]),
                "errors": sum(r["errors"] for r in runs),
            }
            shaped = [r["batching"] for r in runs if r.get("batching")]
            if shaped:
                row["mean_batch"] = _median([b["mean_batch"] for b in shaped])
                row["waited_share"] = _median([b["waited_share"] for b in shaped])
            if turn.startswith("sidecar"):
                for form in FLOORS:
                    per_round = [_round_ratios({label: this[turn][label]}, this.get(form) or {}).get(label)
                                 for this in rounds if label in (this.get(turn) or {})]
                    row[f"vs_{form}"] = {k: _median([r[k] for r in per_round if r])
                                         for k in ("rps", "p50", "p99", "cpu_ms_per_request")}
            figures[label] = row
        out[turn] = figures
    return out


def _median(values: list[float | None]) -> float | None:
    present = sorted(v for v in values if v is not None)
    return round(statistics.median(present), 3) if present else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
