"""Process faults under client load, and what each costs (issue 17's fault-injection suite).

Each fault runs against a fresh 2-worker sidecar serving a private copy of the benchmark
model, while client threads call Recommend over several connections (the shared port and
each worker's own port). For each fault the result records:

- `calls`, `failed_calls` (by status code): what clients saw;
- `recovery_seconds`: from the fault to the pool serving again at full strength (a replaced
  worker answering on its port), where that applies;
- `wrong_version_answers`: answers, started after a Reload returned, from a version other
  than the one it reported; `unverified_answers`: answers whose items differ from what the
  verified files of their version give. Both must be 0.

Faults: `sigkill_worker`, `sigstop_worker` (with --worker-timeout), `bad_version_on_disk`
(manifests of the wrong types, nested JSON, a directory named '²', with --watch and explicit
Reloads), `file_swapped_during_reload` (user factors replaced by rename while Reloads run),
`reload_storm_with_restarts` (Reloads back to back while workers are killed), `dripping_store`
(a replica whose store trickles its target one byte every 5 s: the cache must serve at once,
CURRENT pointed back and a Reload of a cached version must not wait behind the download),
`sigterm_with_health_watchers` (a health Watch on every worker, as a client pool keeps, then
SIGTERM with a long --grace), `memory_from_clients` (a flood of 14 MB calls without a token,
then never-read 1M-user BatchRecommend streams), `rollout_during_batch` (ReloadExperiments
drops an arm's pinned version while a BatchRecommend stream uses it),
`sigterm_racing_verification` (the supervisor stopped while its verifier finishes, then
SIGTERM and SIGCONT: the verdict and the signal in one loop turn), `worker_stopped_during_watch`
(a worker SIGSTOPped while --watch rolls out a new good version), `oversized_experiments_file`
(a valid 600 KiB experiments file rolled out under load, then a 2 MiB one refused).

    python -m bench.faults [--small] [--only NAME ...]   # writes bench/results/faults.json
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
import random
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import common
from harness.bench_model import BenchModel, read_ids
from harness.faults import (
    BAD_MANIFESTS,
    answers,
    deep_manifest,
    huge_file_version,
    publish_copy,
    verdict_waiting,
    verifier_pid,
    worker_pid,
)
from harness.procs import wait_until
from harness.scaffold import Deadline, log
from harness.sidecar import Sidecar, running_sidecar
from harness.versions import copy_version
from reco_sidecar.gen.reco.v1 import reco_pb2, reco_pb2_grpc

CALL_TIMEOUT = 3.0
RETRY_PAUSE = 0.05
USERS = 200


@dataclass
class Call:
    started: float
    ended: float
    version: int = 0
    user: str = ""
    items: tuple[str, ...] = ()
    code: str = "OK"


@dataclass
class Clients:
    """Threads calling Recommend until stopped; every call is recorded."""

    sc: Sidecar
    users: list[str]
    threads: int = 4
    calls: list[Call] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Clients:
        targets = [self.sc.address, *self.sc.worker_addresses]
        self._channels = [grpc.insecure_channel(t) for t in targets for _ in range(2)]
        stubs = [reco_pb2_grpc.RecommenderStub(c) for c in self._channels]  # type: ignore[no-untyped-call]
        self._workers = [threading.Thread(target=self._run, args=(t, stubs), daemon=True) for t in range(self.threads)]
        for w in self._workers:
            w.start()
        return self

    def _run(self, t: int, stubs: list[Any]) -> None:
        i = t
        while not self._stop.is_set():
            user = self.users[i % len(self.users)]
            stub = stubs[i % len(stubs)]
            started = time.monotonic()
            try:
                r = stub.Recommend(reco_pb2.RecommendRequest(user_id=user, n=10), timeout=CALL_TIMEOUT)
                call = Call(started, time.monotonic(), r.version, user, tuple(x.item_id for x in r.items))
            except grpc.RpcError as e:
                call = Call(started, time.monotonic(), code=e.code().name)
            with self._lock:
                self.calls.append(call)
            if call.code != "OK":
                # As a sensible client would: a failed call is not retried in a tight loop, so
                # the count reflects how long the fault lasted, not how fast failures come back.
                time.sleep(RETRY_PAUSE)
            i += self.threads

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for w in self._workers:
            w.join(timeout=30)
        for c in self._channels:
            c.close()

    def summary(self) -> dict[str, Any]:
        failed = Counter(c.code for c in self.calls if c.code != "OK")
        return {"calls": len(self.calls), "failed_calls": sum(failed.values()), "failed_by_code": dict(failed)}


@dataclass
class Run:
    model: BenchModel
    deadline: Deadline
    work: pathlib.Path
    users: list[str]
    baseline: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @contextmanager
    def sidecar(self, name: str, extra: list[str], *, baseline: bool = True
                ) -> Iterator[tuple[Sidecar, pathlib.Path]]:
        """A private model root (a byte copy of the benchmark version as version 1) and a sidecar on it."""
        root = self.work / name / "root"
        model_dir = root / self.model.name
        shutil.rmtree(self.work / name, ignore_errors=True)
        model_dir.mkdir(parents=True)
        shutil.copytree(self.model.version_dir, model_dir / "1")
        manifest = json.loads((model_dir / "1" / "manifest.json").read_text())
        manifest["version"] = 1
        (model_dir / "1" / "manifest.json").write_text(json.dumps(manifest))
        with running_sidecar(root, self.model.name, workers=2, version=1, extra_args=extra,
                             log_path=self.work / name / "sidecar.log", tied=True, stop_grace=5.0) as sc:
            if baseline:
                self.fill_baseline(sc)
            yield sc, model_dir

    def fill_baseline(self, sc: Sidecar) -> None:
        if self.baseline:
            return
        with grpc.insecure_channel(sc.address) as ch:
            stub = reco_pb2_grpc.RecommenderStub(ch)  # type: ignore[no-untyped-call]
            for u in self.users:
                r = stub.Recommend(reco_pb2.RecommendRequest(user_id=u, n=10), timeout=30)
                self.baseline[u] = tuple(x.item_id for x in r.items)

    def unverified(self, calls: list[Call]) -> int:
        """Answers whose items differ from what the verified files give (every version here is
        a byte copy of version 1, so all must match the baseline)."""
        return sum(1 for c in calls if c.code == "OK" and c.items != self.baseline[c.user])


def _reload(sc: Sidecar, version: str, address: str | None = None) -> tuple[str, Any]:
    with grpc.insecure_channel(address or sc.address) as ch:
        stub = reco_pb2_grpc.RecommenderStub(ch)  # type: ignore[no-untyped-call]
        try:
            return "OK", stub.Reload(reco_pb2.ReloadRequest(model="", version=version), timeout=120)
        except grpc.RpcError as e:
            return e.code().name, e.details()


def _replaced(address: str, old_pid: int, timeout: float) -> float:
    started = time.monotonic()
    wait_until(answers(lambda: worker_pid(address, timeout=1) != old_pid), timeout, f"{address} replaced")
    return time.monotonic() - started


def sigkill_worker(run: Run) -> dict[str, Any]:
    with run.sidecar("sigkill_worker", []) as (sc, _), Clients(sc, run.users) as clients:
        wait_until(lambda: len(clients.calls) > 200, 60, "warm-up calls")
        victim = sc.worker_addresses[0]
        pid = worker_pid(victim)
        os.kill(pid, signal.SIGKILL)
        recovery = _replaced(victim, pid, 60)
        time.sleep(1.0)  # keep the load on after recovery, so late failures would show
    return {**clients.summary(), "recovery_seconds": round(recovery, 3),
            "unverified_answers": run.unverified(clients.calls),
            "wrong_version_answers": sum(1 for c in clients.calls if c.code == "OK" and c.version != 1)}


def sigstop_worker(run: Run) -> dict[str, Any]:
    timeout = 2.0
    with run.sidecar("sigstop_worker", ["--worker-timeout", str(timeout)]) as (sc, _), \
            Clients(sc, run.users) as clients:
        wait_until(lambda: len(clients.calls) > 200, 60, "warm-up calls")
        victim = sc.worker_addresses[0]
        pid = worker_pid(victim)
        os.kill(pid, signal.SIGSTOP)
        try:
            recovery = _replaced(victim, pid, 60)
        finally:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        time.sleep(1.0)
        events = [e for e in sc.log_events() if e.get("event") == "worker_timeout"]
    return {**clients.summary(), "worker_timeout": timeout, "recovery_seconds": round(recovery, 3),
            "worker_timeout_events": len(events), "unverified_answers": run.unverified(clients.calls),
            "wrong_version_answers": sum(1 for c in clients.calls if c.code == "OK" and c.version != 1)}


def bad_version_on_disk(run: Run) -> dict[str, Any]:
    outcomes: dict[str, str] = {}
    with run.sidecar("bad_version_on_disk", ["--watch", "0.3"]) as (sc, model_dir), \
            Clients(sc, run.users) as clients:
        wait_until(lambda: len(clients.calls) > 100, 60, "warm-up calls")
        publish_copy(model_dir, 1, name="²")
        for kind, edit in BAD_MANIFESTS.items():
            outcomes[kind] = _reload(sc, publish_copy(model_dir, 1, edit).name)[0]
        deep = publish_copy(model_dir, 1, raw_manifest=deep_manifest(model_dir, 1))
        outcomes["deep_json"] = _reload(sc, deep.name)[0]
        outcomes["latest"] = _reload(sc, "latest")[0]
        time.sleep(1.0)  # several --watch polls over the bad versions
        alive = sc.proc.poll() is None
    return {**clients.summary(), "reload_codes": outcomes, "sidecar_alive": alive, "recovery_seconds": 0.0,
            "unverified_answers": run.unverified(clients.calls),
            "wrong_version_answers": sum(1 for c in clients.calls if c.code == "OK" and c.version != 1)}


def file_swapped_during_reload(run: Run, rounds: int = 20) -> dict[str, Any]:
    codes: Counter[str] = Counter()
    with run.sidecar("file_swapped_during_reload", []) as (sc, model_dir), Clients(sc, run.users) as clients:
        v2 = publish_copy(model_dir, 1)
        target = v2 / "user_factors.npy"
        good = v2 / ".good-user_factors.npy"
        bad = v2 / ".bad-user_factors.npy"
        os.link(target, good)
        factors = np.load(good)
        np.save(bad, factors[::-1].copy())  # same size and header, other users' rows: other answers
        stop = threading.Event()

        def swapper() -> None:
            flip = False
            tmp = v2 / ".swap.npy"
            while not stop.is_set():
                tmp.unlink(missing_ok=True)
                os.link(bad if flip else good, tmp)
                os.rename(tmp, target)
                flip = not flip
                time.sleep(0.005)

        th = threading.Thread(target=swapper, daemon=True)
        th.start()
        try:
            for i in range(rounds):
                codes[_reload(sc, "2" if i % 2 == 0 else "1")[0]] += 1
        finally:
            stop.set()
            th.join()
            (v2 / ".swap.npy").unlink(missing_ok=True)
            os.link(good, v2 / ".swap.npy")
            os.rename(v2 / ".swap.npy", target)
        time.sleep(0.5)
    return {**clients.summary(), "reloads": rounds, "reload_codes": dict(codes), "recovery_seconds": 0.0,
            "unverified_answers": run.unverified(clients.calls)}


def reload_storm_with_restarts(run: Run, seconds: float = 20.0) -> dict[str, Any]:
    rng = random.Random(7)
    codes: Counter[str] = Counter()
    details: Counter[str] = Counter()
    returned: list[tuple[float, int]] = []  # when a Reload returned OK, and the version it reported
    sent: list[float] = []
    with run.sidecar("reload_storm_with_restarts", []) as (sc, model_dir), Clients(sc, run.users) as clients:
        publish_copy(model_dir, 1)
        stop = threading.Event()
        kills = [0]

        def killer() -> None:
            while not stop.wait(rng.uniform(0.2, 1.2)):
                try:
                    os.kill(worker_pid(rng.choice(sc.worker_addresses), timeout=1), signal.SIGKILL)
                    kills[0] += 1
                except (grpc.RpcError, ProcessLookupError):
                    pass

        th = threading.Thread(target=killer, daemon=True)
        th.start()
        end = time.monotonic() + seconds
        rounds = 0
        try:
            while time.monotonic() < end:
                version = 2 if rounds % 2 == 0 else 1
                rounds += 1
                sent.append(time.monotonic())
                code, resp = _reload(sc, str(version))
                codes[code] += 1
                if code != "OK":
                    details[f"{code}: {str(resp)[:120]}"] += 1
                    time.sleep(RETRY_PAUSE)
                if code == "OK":
                    returned.append((time.monotonic(), int(resp.new_version)))
        finally:
            stop.set()
            th.join()
        sent.append(float("inf"))
        time.sleep(0.5)
    wrong = 0
    for done, version in returned:
        nxt = min(t for t in sent if t > done)
        wrong += sum(1 for c in clients.calls if c.code == "OK" and done < c.started and c.ended < nxt
                     and c.version != version)
    return {**clients.summary(), "reloads": rounds, "reload_codes": dict(codes),
            "reload_failures": dict(details.most_common(5)), "workers_killed": kills[0],
            "wrong_version_answers": wrong, "unverified_answers": run.unverified(clients.calls)}


def dripping_store(run: Run) -> dict[str, Any]:
    """A replica behind a relay that sends the target version's objects one byte every 5 s
    (the real SeaweedFS server behind it). Records how long the restart took to serve its
    cache, how long CURRENT pointed back at a cached version took to be followed, and a
    Reload of a cached version, all while the download trickles."""
    from harness import seaweedfs
    from harness.relay import relay
    from reco_sidecar.store import location
    from reco_sidecar.store.publish import publish
    from reco_sidecar.store.remote import RemoteModel

    binary = seaweedfs.weed_binary()
    if binary is None:
        raise RuntimeError("weed is not built: run scripts/seaweedfs.sh")
    name, work = run.model.name, run.work / "dripping_store"
    shutil.rmtree(work, ignore_errors=True)
    local = work / "local" / name
    local.mkdir(parents=True)
    for v in (1, 2, 3):
        shutil.copytree(run.model.version_dir, local / str(v))
        manifest = json.loads((local / str(v) / "manifest.json").read_text())
        (local / str(v) / "manifest.json").write_text(json.dumps({**manifest, "version": v}))
    with seaweedfs.running_s3(binary, work / "weed") as s3:
        s3.client().create_bucket(Bucket="faults")
        store = "s3://faults/models"
        model = RemoteModel(s3.client(), location.parse(store), name)
        for v in (1, 2, 3):
            publish(model, local / str(v), promote=True)
        cache = work / "cache"
        for v in (1, 2):  # what the replica had before its restart
            shutil.copytree(local / str(v), cache / name / str(v))
        with relay(s3.ports["s3"]) as link:
            link.drip(f"/{name}/3/", every=5.0, per_drip=1)
            env = {**s3.env(), "RECO_S3_ENDPOINT_URL": link.endpoint}
            with running_sidecar(cache, name, workers=2, env=env, log_path=work / "sidecar.log", tied=True,
                                 extra_args=["--model-store", store, "--watch", "0.5"]) as sc:
                run.fill_baseline(sc)  # every version here is a byte copy of the benchmark version
                with Clients(sc, run.users) as clients:
                    started_on = sc.ready["version"]
                    wait_until(lambda: len(clients.calls) > 100, 60, "warm-up calls")
                    pointed = time.monotonic()
                    model.write_pointer(1)
                    wait_until(answers(lambda: _status(sc).version == 1), 120, "CURRENT followed back to 1")
                    followed = time.monotonic() - pointed
                    asked = time.monotonic()
                    code, _ = _reload(sc, "2")
                    reload_seconds = time.monotonic() - asked
                    wait_until(lambda: any(e.get("event") == "store_download_failed" for e in sc.log_events()), 60,
                               "the trickling download to fail its progress check")
                    failures = [e.get("error", "") for e in sc.log_events()
                                if e.get("event") == "store_download_failed"]
    return {**clients.summary(), "ready_seconds": round(sc.ready_seconds, 3), "started_on_version": started_on,
            "current_followed_seconds": round(followed, 3), "reload_cached_code": code,
            "reload_cached_seconds": round(reload_seconds, 3), "download_failures": len(failures),
            "download_failure": failures[0][:200] if failures else "",
            "unverified_answers": run.unverified(clients.calls)}


def _status(sc: Sidecar) -> Any:
    with grpc.insecure_channel(sc.address) as ch:
        stub = reco_pb2_grpc.RecommenderStub(ch)  # type: ignore[no-untyped-call]
        return stub.GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=5)


def sigterm_with_health_watchers(run: Run, grace: float = 30.0) -> dict[str, Any]:
    """Stopping must not wait --grace for the health Watch streams a client pool keeps."""
    with run.sidecar("sigterm_with_health_watchers", ["--grace", str(grace)]) as (sc, _), \
            Clients(sc, run.users) as clients:
        wait_until(lambda: len(clients.calls) > 200, 60, "warm-up calls")
        channels = [grpc.insecure_channel(a) for a in sc.worker_addresses]
        watches = [health_pb2_grpc.HealthStub(c).Watch(health_pb2.HealthCheckRequest(), timeout=3 * grace)
                   for c in channels]
        for w in watches:
            next(w)
        ended: list[str] = []

        def drain(w: Any) -> None:
            statuses = [m.status for m in w]
            ended.append(health_pb2.HealthCheckResponse.ServingStatus.Name(statuses[-1]) if statuses else "none")

        readers = [threading.Thread(target=drain, args=(w,), daemon=True) for w in watches]
        for r in readers:
            r.start()
        started = time.monotonic()
        sc.proc.send_signal(signal.SIGTERM)
        code = sc.proc.wait(3 * grace)
        exit_seconds = time.monotonic() - started
        for r in readers:
            r.join(5)
        for c in channels:
            c.close()
        drained = [e["drained_seconds"] for e in sc.log_events() if e.get("event") == "worker_exit"
                   and "drained_seconds" in e]
    return {**clients.summary(), "grace": grace, "exit_code": code, "exit_seconds": round(exit_seconds, 3),
            "drained_seconds": drained, "watch_ended_with": ended}


def _peak_rss(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def memory_from_clients(run: Run, flood: int = 24, streams: int = 8) -> dict[str, Any]:
    """What clients can make one worker hold: large calls without a token, then never-read
    1M-user BatchRecommend streams with one (peak resident memory reset before each)."""
    mb = 1 << 20
    token = "fault-caller"
    tokens = run.work / "callers"
    tokens.write_text(token + "\n")
    out: dict[str, Any] = {}
    bearer = [("authorization", f"Bearer {token}")]
    with run.sidecar("memory_from_clients", ["--auth-tokens-file", str(tokens)], baseline=False) as (sc, _):
        address = sc.worker_addresses[0]
        with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 32 * mb)]) as ch:
            stub = reco_pb2_grpc.RecommenderStub(ch)  # type: ignore[no-untyped-call]
            pid = stub.GetModelStatus(reco_pb2.GetModelStatusRequest(), metadata=bearer, timeout=10).worker.pid
            body = reco_pb2.RecommendRequest(user_id="u", n=1, recent_item_ids=["i" * 1000] * 14_000)
            pathlib.Path(f"/proc/{pid}/clear_refs").write_text("5")
            before = _peak_rss(pid)
            futures = [stub.Recommend.future(body, timeout=120) for _ in range(flood)]
            codes = Counter(f.exception().code().name if f.exception() else "OK" for f in futures)
            out["unauthenticated_flood"] = {"calls": flood, "mb_each": 14, "codes": dict(codes),
                                            "peak_growth_mb": round((_peak_rss(pid) - before) / mb, 1)}
            request = reco_pb2.BatchRecommendRequest(user_ids=[f"user-{i:07d}" for i in range(1_000_000)], n=10)
            pathlib.Path(f"/proc/{pid}/clear_refs").write_text("5")
            before = _peak_rss(pid)
            opened: list[Any] = []
            outcomes: Counter[str] = Counter()
            for _ in range(streams):
                stream = stub.BatchRecommend(request, timeout=300, metadata=bearer)
                opened.append(stream)
                try:
                    next(stream)
                    outcomes["OK"] += 1
                except grpc.RpcError as e:
                    outcomes[e.code().name] += 1
            out["unread_streams"] = {"streams": streams, "request_mb": round(request.ByteSize() / mb, 1),
                                     "outcomes": dict(outcomes),
                                     "peak_growth_mb": round((_peak_rss(pid) - before) / mb, 1)}
            for stream in opened:
                stream.cancel()
    return out


ROLLOUT = """
[[experiments]]
name = "versions"
salt = "versions-1"
share = 1.0
arms = [
  {{ name = "current", model = "{model}", weight = 1 }},
{pinned}]
"""


def rollout_during_batch(run: Run, users: int = 120_000) -> dict[str, Any]:
    """A stream keeps the arms' models it took at its start through a rollout that drops one."""
    exp_file = run.work / "experiments.toml"
    pinned = f'  {{ name = "old", model = "{run.model.name}", version = 1, weight = 1 }},\n'
    exp_file.write_text(ROLLOUT.format(model=run.model.name, pinned=pinned))
    with run.sidecar("rollout_during_batch", ["--experiments", str(exp_file)]) as (sc, _):
        options = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 65536)]
        with grpc.insecure_channel(sc.worker_addresses[0], options=options) as ch:
            stub = reco_pb2_grpc.RecommenderStub(ch)  # type: ignore[no-untyped-call]
            stream = stub.BatchRecommend(reco_pb2.BatchRecommendRequest(
                user_ids=[f"user-{i}" for i in range(users)], n=10), timeout=600)
            answered = [next(stream)]
            exp_file.write_text(ROLLOUT.format(model=run.model.name, pinned=""))
            code, _ = "OK", stub.ReloadExperiments(reco_pb2.ReloadExperimentsRequest(), timeout=120)
            try:
                answered.extend(stream)
                stream_code = "OK"
            except grpc.RpcError as e:
                stream_code = f"{e.code().name}: {e.details()}"
    return {"users": users, "rollout": code, "stream": stream_code, "answered": len(answered),
            "arms": dict(Counter(a.arm for a in answered))}


def sigterm_racing_verification(run: Run, rounds: int = 3) -> dict[str, Any]:
    """Each round: a Reload whose verification takes a few CPU ticks; the supervisor is
    stopped until the verdict waits in its socket, then gets SIGTERM and SIGCONT."""
    codes, killed_after_grace = [], 0
    for round_ in range(rounds):
        with run.sidecar(f"sigterm_racing_verification_{round_}", ["--grace", "5"], baseline=False) \
                as (sc, model_dir):
            version = huge_file_version(model_dir, 1, 768 * 1024**2)  # sparse: no disk used
            workers = {worker_pid(a) for a in sc.worker_addresses}
            reloading = threading.Thread(target=_reload, args=(sc, version.name), daemon=True)
            reloading.start()
            wait_until(functools.partial(verifier_pid, sc, workers), 30, "the verification to start")
            verifier = verifier_pid(sc, workers)
            os.kill(sc.proc.pid, signal.SIGSTOP)
            try:
                wait_until(functools.partial(verdict_waiting, verifier), 60, "the verdict")
                os.kill(sc.proc.pid, signal.SIGTERM)
            finally:
                os.kill(sc.proc.pid, signal.SIGCONT)
            codes.append(sc.proc.wait(30))
            reloading.join(30)
            killed_after_grace += sum(1 for e in sc.log_events() if e.get("event") == "workers_killed_after_grace")
    return {"rounds": rounds, "exit_codes": codes, "workers_killed_after_grace": killed_after_grace}


def worker_stopped_during_watch(run: Run, timeout: float = 3.0) -> dict[str, Any]:
    """A worker stopped while --watch rolls out a good version 2: once it is replaced, the
    watch tries version 2 again (a worker's fault says nothing about the version)."""
    args = ["--worker-timeout", str(timeout), "--watch", "0.2"]
    with run.sidecar("worker_stopped_during_watch", args) as (sc, model_dir), Clients(sc, run.users) as clients:
        wait_until(lambda: len(clients.calls) > 200, 60, "warm-up calls")
        pid = worker_pid(sc.worker_addresses[1])
        os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        try:
            version = copy_version(model_dir, 1)
            wait_until(lambda: any(e.get("event") == "worker_timeout" for e in sc.log_events()), 60,
                       "the stopped worker timed out")
        finally:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        wait_until(lambda: any(e.get("event") == "reload_done" and e.get("version") == version
                               for e in sc.log_events()), 120, f"version {version} served")
        served_after = time.monotonic() - started
        time.sleep(1.0)  # keep the load on after recovery, so late failures would show
        events = sc.log_events()
    return {**clients.summary(), "worker_timeout": timeout, "seconds_to_new_version": round(served_after, 3),
            "reloads_failed": sum(1 for e in events if e.get("event") == "reload_failed"),
            "version_failed": [e.get("version") for e in events if e.get("event") == "version_failed"],
            "unverified_answers": run.unverified(clients.calls)}


def oversized_experiments_file(run: Run, kib: int = 600) -> dict[str, Any]:
    """A valid experiments file far past one control frame (`kib` KiB, under the 1 MiB limit) is
    rolled out by ReloadExperiments under load; then a 2 MiB one is refused at once and the
    600 KiB rules keep serving."""
    name = run.model.name
    body = (f'[[experiments]]\nname = "feed"\nsalt = "feed-big"\nshare = 1.0\narms = [\n'
            f'  {{ name = "control", model = "{name}", weight = 1 }},\n'
            f'  {{ name = "popular", baseline = "popular", weight = 1 }},\n]\n')
    padding = "# " + "x" * 98 + "\n"
    exp_file = run.work / "oversized_experiments_file.toml"
    exp_file.parent.mkdir(parents=True, exist_ok=True)
    exp_file.write_text(body)
    with run.sidecar("oversized_experiments_file", ["--experiments", str(exp_file)]) as (sc, _), \
            Clients(sc, run.users) as clients:
        wait_until(lambda: len(clients.calls) > 200, 60, "warm-up calls")
        exp_file.write_text(body + padding * (kib * 1024 // len(padding) + 1))
        started = time.monotonic()
        code, done = _reload_experiments(sc)
        big_seconds = time.monotonic() - started
        exp_file.write_text(body + padding * (2 * 1024 * 1024 // len(padding)))
        started = time.monotonic()
        refused, _ = _reload_experiments(sc)
        refused_seconds = time.monotonic() - started
        time.sleep(1.0)  # keep the load on after the refusal, so late failures would show
    return {**clients.summary(), "file_kib": kib, "rollout_code": code,
            "rollout_workers": getattr(done, "workers", None), "rollout_seconds": round(big_seconds, 3),
            "two_mib_code": refused, "two_mib_seconds": round(refused_seconds, 3),
            "unverified_answers": run.unverified(clients.calls)}


def _reload_experiments(sc: Sidecar) -> tuple[str, Any]:
    with grpc.insecure_channel(sc.address) as ch:
        stub = reco_pb2_grpc.RecommenderStub(ch)  # type: ignore[no-untyped-call]
        try:
            return "OK", stub.ReloadExperiments(reco_pb2.ReloadExperimentsRequest(), timeout=120)
        except grpc.RpcError as e:
            return e.code().name, None


FAULTS: dict[str, Callable[[Run], dict[str, Any]]] = {
    f.__name__: f for f in (sigkill_worker, sigstop_worker, bad_version_on_disk, file_swapped_during_reload,
                             reload_storm_with_restarts, dripping_store, sigterm_with_health_watchers,
                             memory_from_clients, rollout_during_batch, sigterm_racing_verification,
                             worker_stopped_during_watch, oversized_experiments_file)
}


def main() -> int:
    p = common.parser(__doc__, time_limit=1200)
    p.add_argument("--only", nargs="*", choices=sorted(FAULTS), help="run only these faults")
    args = p.parse_args()

    def body(model: BenchModel, deadline: Deadline, result: dict[str, Any]) -> None:
        users = read_ids(model.version_dir)[0][:USERS]
        with tempfile.TemporaryDirectory(prefix="faults-") as work:
            run = Run(model, deadline, pathlib.Path(work), users)
            result["faults"] = {}
            for name in args.only or FAULTS:
                log("fault_start", fault=name)
                try:
                    result["faults"][name] = FAULTS[name](run)
                except Exception as e:
                    result["faults"][name] = {"error": f"{type(e).__name__}: {e}"}
                    result["failures"].append(f"{name}: {type(e).__name__}: {e}")
                log("fault_done", fault=name, **{k: v for k, v in result["faults"][name].items()
                                                 if not isinstance(v, dict)})

    return common.run("faults", args, body)


if __name__ == "__main__":
    raise SystemExit(main())
