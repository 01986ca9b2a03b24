"""Online learning's figures (docs/online.md) on the benchmark model with 2 workers:

1. Feedback throughput: sender threads send batches of events for known users as fast as
   the sidecar accepts them (events/s), while a probe sends one event for a new user every
   20 ms and asks every worker (one channel per worker address) until each answers that user
   from its events: the time from the Feedback's return to the last worker's answer.
2. Recommend's p99 at a fixed rate (ghz, open loop) with Feedback at a fixed event rate
   beside it, as a ratio to the same Recommend load alone, in the same run: one ghz run,
   Feedback switched on and off every `--slice-seconds` through it (`--rounds` slices on,
   each between two off), the calls made in the on slices against those made in the off
   ones (harness/interleaved.py); the figure is the pooled p99's ratio with a bootstrap
   interval. Runs taking turns compared different minutes, and a run alone moved 3x from
   one minute to the next here.

    python -m bench.online_feedback          # writes bench/results/online_feedback.json
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import tempfile
import threading
import time
from typing import Any

import grpc

from bench import common
from harness import accounting, bench_model, ghz_run, interleaved, scaffold
from harness.ghz_run import GhzRun, percentile
from harness.gotools import find as find_ghz
from harness.procs import stat_fields
from harness.versions import copy_version
from reco_sidecar.gen.reco.v1 import reco_pb2, reco_pb2_grpc


def _stub(address: str) -> tuple[grpc.Channel, reco_pb2_grpc.RecommenderStub]:
    channel = grpc.insecure_channel(address)
    return channel, reco_pb2_grpc.RecommenderStub(channel)  # type: ignore[no-untyped-call]


class _Sender(threading.Thread):
    """Sends batches until `stop`; at `rate` events/s when given, else as fast as answered."""

    def __init__(self, address: str, users: list[str], items: list[str], batch: int, stop: threading.Event,
                 tag: str, rate: float = 0.0, gate: threading.Event | None = None) -> None:
        super().__init__(daemon=True)
        self.address, self.users, self.items, self.batch = address, users, items, batch
        self.stop, self.tag, self.rate, self.gate = stop, tag, rate, gate
        self.accepted = self.calls = self.errors = 0
        self.latencies: list[float] = []

    def _paused(self) -> bool:
        """Waits while the gate is shut; True when it waited (the pace starts again)."""
        if self.gate is None or self.gate.is_set():
            return False
        while not self.gate.wait(0.01):
            if self.stop.is_set():
                break
        return True

    def run(self) -> None:
        channel, stub = _stub(self.address)
        rng = random.Random(self.tag)
        k = paced = 0
        started = time.perf_counter()
        try:
            while not self.stop.is_set():
                if self._paused():
                    started, paced = time.perf_counter(), 0
                    continue
                events = []
                for _ in range(self.batch):
                    k += 1
                    paced += 1
                    events.append(reco_pb2.FeedbackEvent(event_id=f"{self.tag}-{k}", user_id=rng.choice(self.users),
                                                         item_id=rng.choice(self.items), type="click"))
                t0 = time.perf_counter()
                try:
                    answer = stub.Feedback(reco_pb2.FeedbackRequest(events=events), timeout=30)
                    self.accepted += answer.accepted
                except grpc.RpcError:
                    self.errors += 1
                self.latencies.append(time.perf_counter() - t0)
                self.calls += 1
                if self.rate:
                    due = started + paced / self.rate
                    pause = due - time.perf_counter()
                    if pause > 0:
                        self.stop.wait(pause)
        finally:
            channel.close()


class _Probe(threading.Thread):
    """One event for a new user every `every` seconds; how long until every worker answers them
    from it, measured from the Feedback's return."""

    def __init__(self, shared: str, workers: list[str], item: str, stop: threading.Event, every: float = 0.02
                 ) -> None:
        super().__init__(daemon=True)
        self.shared, self.workers, self.item, self.stop, self.every = shared, workers, item, stop, every
        self.visible_ms: list[float] = []
        self.first_answer_online = 0
        self.failures = 0

    def run(self) -> None:
        channel, stub = _stub(self.shared)
        workers = [_stub(a) for a in self.workers]
        i = 0
        try:
            while not self.stop.is_set():
                i += 1
                user = f"probe-{i}-{time.time_ns()}"
                try:
                    stub.Feedback(reco_pb2.FeedbackRequest(events=[reco_pb2.FeedbackEvent(
                        event_id=f"probe-{user}", user_id=user, item_id=self.item, type="share")]), timeout=30)
                except grpc.RpcError:
                    self.failures += 1
                    continue
                returned = time.perf_counter()
                first_try = True
                for _, worker in workers:
                    while True:
                        r = worker.Recommend(reco_pb2.RecommendRequest(user_id=user, n=10, omit_jsonld=True),
                                             timeout=30)
                        if r.source == reco_pb2.SOURCE_ONLINE_NEW_USER:
                            break
                        first_try = False
                self.visible_ms.append((time.perf_counter() - returned) * 1000)
                self.first_answer_online += first_try
                self.stop.wait(self.every)
        finally:
            channel.close()
            for ch, _ in workers:
                ch.close()


# A version number for the benchmark model's copy that records event types (the cached model
# may predate manifests recording them; `train` records these defaults).
ONLINE_VERSION = 90
BESIDE_SENDERS = 8
TYPES = {"view": 0.1, "click": 0.3, "like": 0.7, "share": 1.0}


def _online_model(model: bench_model.BenchModel) -> bench_model.BenchModel:
    model_dir = model.root / model.name
    if not (model_dir / str(ONLINE_VERSION) / "manifest.json").is_file():
        def typed(manifest: dict[str, object]) -> None:
            manifest["event_types"] = {k: {"weight": w, "excludes": True} for k, w in TYPES.items()}
            manifest["as_of"] = None

        copy_version(model_dir, model.version, ONLINE_VERSION, edit=typed)
    return dataclasses.replace(model, version=ONLINE_VERSION)


def _cpu_by_role(root: int, tree: list[int]) -> dict[str, float]:
    """CPU seconds so far of the sidecar's processes by role (the learner runs niced), and of
    this process (the Feedback senders)."""
    out = {"bench": accounting.cpu_seconds(os.getpid())}
    for pid in tree:
        fields = stat_fields(pid)
        if fields is None:
            continue
        role = "supervisor" if pid == root else "learner" if int(fields[16]) > 0 else "workers"
        out[role] = out.get(role, 0.0) + accounting.cpu_seconds(pid)
    return out


def _ms(values: list[float]) -> dict[str, float]:
    s = sorted(values)
    return {f"p{q}": round(percentile(s, q), 3) for q in (50, 95, 99)} | {"max": round(s[-1], 3) if s else 0.0}


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__, time_limit=600)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seconds", type=float, default=8.0, help="throughput phase")
    p.add_argument("--senders", type=int, default=4)
    p.add_argument("--batch", type=int, default=100, help="events per Feedback call")
    p.add_argument("--rec-rps", type=int, default=500)
    p.add_argument("--events-per-s", type=float, default=2000.0)
    p.add_argument("--slice-seconds", type=float, default=2.0, help="feedback on, or off, this long at a time")
    p.add_argument("--rounds", type=int, default=15, help="slices with feedback, each between two without")
    p.add_argument("--fsync", choices=("always", "never"), default="always")
    args = p.parse_args(argv)

    def body(model: bench_model.BenchModel, deadline: scaffold.Deadline, result: dict[str, Any]) -> None:
        model = _online_model(model)
        ghz = find_ghz("ghz", install=True)
        if ghz is None:
            raise RuntimeError("ghz is not installed and go is not available to install it")
        out = common.RESULTS / "online_feedback"
        data = bench_model.write_data_files(model.version_dir, out, unknown_user_share=0.0)
        users, items = bench_model.read_ids(model.version_dir)
        result["config"] = vars(args) | {"work_dir": str(args.work_dir), "out": str(args.out)}
        with tempfile.TemporaryDirectory(prefix="online-bench-") as state, \
                bench_model.serve(model, workers=args.workers,
                                  extra=["--online-dir", state, "--online-fsync", args.fsync],
                                  log_path=common.RESULTS / "logs" / "online_feedback.log") as sc:
            # 1. throughput and visibility
            stop = threading.Event()
            senders = [_Sender(sc.address, users, items, args.batch, stop, f"t{i}") for i in range(args.senders)]
            probe = _Probe(sc.address, sc.worker_addresses, items[0], stop)
            started = time.perf_counter()
            for t in (*senders, probe):
                t.start()
            stop.wait(args.seconds)
            stop.set()
            for t in (*senders, probe):
                t.join(60)
            elapsed = time.perf_counter() - started
            accepted = sum(s.accepted for s in senders)
            result["throughput"] = {
                "seconds": round(elapsed, 2), "events_accepted": accepted,
                "events_per_s": round(accepted / elapsed, 1),
                "calls": sum(s.calls for s in senders), "errors": sum(s.errors for s in senders),
                "call_ms": _ms([x * 1000 for s in senders for x in s.latencies]),
                "visible_on_every_worker_ms": _ms(probe.visible_ms), "probes": len(probe.visible_ms),
                "probes_online_at_first_ask": probe.first_answer_online, "probe_failures": probe.failures,
            }
            scaffold.log("online_throughput", **{k: v for k, v in result["throughput"].items()
                                                 if not isinstance(v, dict)})
            # 2. Recommend beside Feedback, against Recommend alone
            flags, source = ghz_run.descriptor_source(ghz, sc.address, out)
            result["ghz_descriptors"] = source
            warm = GhzRun("warmup", "Recommend", data["Recommend"], rps=args.rec_rps, concurrency=16,
                          connections=4, duration_s=3)
            ghz_run.run_ghz(ghz, flags, sc.address, warm, out / "warmup.json", deadline)
            # One run, feedback on and off in slices through it (harness/interleaved.py).
            gate, stop = threading.Event(), threading.Event()
            # Eight paced senders: each waits for its answer, so with four a slow minute left
            # the offered rate 10-40 % short of --events-per-s.
            beside = [_Sender(sc.address, users, items, args.batch, stop, f"beside-{k}",
                              rate=args.events_per_s / BESIDE_SENDERS, gate=gate) for k in range(BESIDE_SENDERS)]
            for t in beside:
                t.start()
            count = 2 * args.rounds + 1
            run = GhzRun("interleaved", "Recommend", data["Recommend"], rps=args.rec_rps, concurrency=32,
                         connections=4, duration_s=count * args.slice_seconds + 1.0)
            report = out / "ghz-interleaved.json"
            ghz_thread = threading.Thread(
                target=lambda: ghz_run.run_ghz(ghz, flags, sc.address, run, report, deadline), daemon=True)
            ghz_thread.start()
            time.sleep(0.5)  # ghz's connections made before the first slice
            slices: list[interleaved.Slice] = []
            accepted_on = 0
            cpu: dict[bool, dict[str, float]] = {True: {}, False: {}}
            for i in range(count):
                on = i % 2 == 1
                before = sum(s.accepted for s in beside)
                (gate.set if on else gate.clear)()
                begun, used = time.time(), _cpu_by_role(sc.proc.pid, sc.tree_pids())
                time.sleep(args.slice_seconds)
                slices.append(interleaved.Slice(begun, time.time(), on))
                for role, seconds in _cpu_by_role(sc.proc.pid, sc.tree_pids()).items():
                    cpu[on][role] = cpu[on].get(role, 0.0) + seconds - used.get(role, seconds)
                if on:
                    gate.clear()
                    accepted_on += sum(s.accepted for s in beside) - before
            stop.set()
            ghz_thread.join(run.duration_s + 120)
            for t in beside:
                t.join(60)
            calls = interleaved.call_starts(json.loads(report.read_text()).get("details") or [])
            latencies = interleaved.by_slice(calls, slices, guard=args.slice_seconds / 4)
            on_seconds = sum(s.end - s.start for s in slices if s.on)
            off_seconds = sum(s.end - s.start for s in slices if not s.on)
            result["recommend"] = {
                "slices": count, "slice_seconds": args.slice_seconds, "guard_seconds": args.slice_seconds / 4,
                "rps_offered": args.rec_rps, "calls": len(calls),
                "feedback_events_per_s_while_on": round(accepted_on / on_seconds, 1),
                "feedback_errors": sum(s.errors for s in beside),
                "feedback_call_ms": _ms([x * 1000 for s in beside for x in s.latencies]),
                # cores used, per process role, while feedback was on and while it was off
                "cpu_cores_on": {k: round(v / on_seconds, 3) for k, v in sorted(cpu[True].items())},
                "cpu_cores_off": {k: round(v / off_seconds, 3) for k, v in sorted(cpu[False].items())},
                "p99": interleaved.compare(slices, latencies, 99.0),
                "p50": interleaved.compare(slices, latencies, 50.0),
            }
            result["p99_ratio_with_feedback"] = result["recommend"]["p99"]["ratio"]
            result["note"] = ("machine shared with other work (noisy); feedback switched on and off in slices "
                              "through one Recommend run, calls grouped by the slice they started in")

    return common.run("online_feedback", args, body)


if __name__ == "__main__":
    raise SystemExit(main())
