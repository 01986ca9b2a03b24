"""The worker pool as a FLAME runner, tested against the real process tree."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness.accounting import file_mappings
from harness.procs import group_pids, kill_group, wait_until
from reco_sidecar.common.exit_codes import ExitCode
from reco_sidecar.gen.reco.v1 import reco_pb2, reco_pb2_grpc
from tests.support.load import Load
from tests.support.server import command, running_sidecar, stop_tree

pytestmark = pytest.mark.slow


def _pid_of(stub: reco_pb2_grpc.RecommenderStub) -> int:
    return int(stub.GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=5).worker.pid)


def _health(address: str, service: str = "") -> int:
    with grpc.insecure_channel(address) as ch:
        return int(health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service),
                                                        timeout=5).status)


def test_per_worker_addresses_reach_every_worker(demo_root: pathlib.Path) -> None:
    with running_sidecar(demo_root, "demo", workers=2) as sc:
        assert sc.ready["workers"] == 2 and len(set(sc.worker_addresses)) == 2
        pids = {_pid_of(sc.stub(addr)) for addr in sc.worker_addresses}
        assert len(pids) == 2
        # status lists the same addresses and pids, whichever worker answers
        st = sc.stub().GetModelStatus(reco_pb2.GetModelStatusRequest())
        assert {w.address for w in st.workers} == set(sc.worker_addresses)
        assert {w.pid for w in st.workers} == pids
        assert st.shared_address == sc.address


def test_one_round_robin_channel_over_worker_addresses_reaches_every_worker(demo_root: pathlib.Path) -> None:
    with running_sidecar(demo_root, "demo", workers=2) as sc:
        target = "ipv4:" + ",".join(sc.worker_addresses)
        stub = sc.stub(target, **{"grpc.lb_policy_name": "round_robin"})
        # until both subchannels have connected, round robin can only use the first one
        warm = [_pid_of(stub) for _ in range(50)]
        assert len(set(warm)) == 2
        pids = [_pid_of(stub) for _ in range(20)]
        # round robin alternates, so both get about half
        assert len(set(pids)) == 2 and min(pids.count(p) for p in set(pids)) >= 8


def test_ready_line_comes_after_health_serving_on_every_address(demo_root: pathlib.Path) -> None:
    with running_sidecar(demo_root, "demo", workers=2) as sc:
        assert sc.ready["port"] > 0 and sc.address.endswith(f":{sc.ready['port']}")
        assert sc.ready["model"] == "demo" and sc.ready["version"] == 1 and sc.ready["pid"] == sc.proc.pid
        for address in [sc.address, *sc.worker_addresses]:
            assert _health(address) == health_pb2.HealthCheckResponse.SERVING
            assert _health(address, "reco.v1.Recommender") == health_pb2.HealthCheckResponse.SERVING
        # exactly one line on stdout
        assert sc.proc.stdout is not None
        os.set_blocking(sc.proc.stdout.fileno(), False)
        assert not sc.proc.stdout.read()


def test_kill_9_of_a_worker_under_load_is_replaced_with_bounded_failures(demo_root: pathlib.Path) -> None:
    with running_sidecar(demo_root, "demo", workers=2) as sc:
        stub = sc.stub("ipv4:" + ",".join(sc.worker_addresses), **{"grpc.lb_policy_name": "round_robin"})
        before = {_pid_of(sc.stub(a)) for a in sc.worker_addresses}
        victim = _pid_of(sc.stub(sc.worker_addresses[0]))

        def call(i: int) -> int:
            resp = stub.Recommend(reco_pb2.RecommendRequest(user_id=f"u{i % 500:07d}", n=5), timeout=5)
            assert len(resp.items) == 5
            return 1

        def replaced() -> bool:
            try:
                return _pid_of(sc.stub(sc.worker_addresses[0])) != victim
            except grpc.RpcError:
                return False

        with Load(call, threads=4) as load:
            wait_until(lambda: load.result.ok >= 20, 30, "load reaches both workers")
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            wait_until(replaced, 30, "the killed worker is replaced")
            replaced_at = time.monotonic()
            served = load.result.ok
            wait_until(lambda: load.result.ok >= served + 50, 30, "50 more answers after the replacement")
        after = {_pid_of(sc.stub(a)) for a in sc.worker_addresses}
        assert victim not in after and len(after) == 2 and len(after & before) == 1
        # Only calls that were running when the worker died, or started while its connection was
        # being reset, may fail, and only as a lost connection; once the replacement serves, every
        # call that starts is answered.
        assert {code for _, _, code in load.result.failed_calls} <= {"UNAVAILABLE", "CANCELLED", "INTERNAL"}
        assert all(ended >= killed_at for _, ended, _ in load.result.failed_calls), load.result.errors[:5]
        late = [(started, code) for started, _, code in load.result.failed_calls if started > replaced_at]
        assert late == [], load.result.errors[-5:]


def test_port_zero_and_port_already_served_is_refused(demo_root: pathlib.Path) -> None:
    with running_sidecar(demo_root, "demo", workers=1) as sc:
        args = command(demo_root, "demo", 1, [])
        args[args.index("--port") + 1] = str(sc.ready["port"])
        second = subprocess.run(args, capture_output=True, timeout=60, start_new_session=True)
        assert second.returncode == ExitCode.PORT_IN_USE
        assert b"already in use" in second.stderr
        assert second.stdout == b""
        assert _health(sc.address) == health_pb2.HealthCheckResponse.SERVING


def test_idle_shutdown_fires_when_idle(demo_root: pathlib.Path) -> None:
    with running_sidecar(demo_root, "demo", workers=2, extra_args=["--idle-shutdown-after", "1.5"]) as sc:
        assert sc.proc.wait(30) == 0
        wait_until(lambda: not sc.tree_pids(), 10, "every worker has exited")
        stops = [e for e in sc.log_events() if e.get("event") == "supervisor_stopping"]
        assert [e.get("reason") for e in stops] == ["idle"], stops


def test_idle_shutdown_does_not_fire_while_traffic_flows(demo_root: pathlib.Path) -> None:
    with running_sidecar(demo_root, "demo", workers=2, extra_args=["--idle-shutdown-after", "1"]) as sc:
        stubs = [sc.stub(a) for a in sc.worker_addresses]
        # Traffic, paced well inside the idle limit, for three times that limit.
        end = time.monotonic() + 3
        i = 0
        while time.monotonic() < end:
            stubs[i % 2].Recommend(reco_pb2.RecommendRequest(user_id="u0000001", n=3), timeout=5)
            i += 1
            time.sleep(0.1)
        assert sc.proc.poll() is None
        assert not any(e.get("event") == "supervisor_stopping" for e in sc.log_events())
        assert sc.proc.wait(30) == 0  # and it does fire once traffic stops


PARENT = textwrap.dedent("""
    import subprocess, sys
    args = sys.argv[1:] + ["--parent-pid", str(__import__("os").getpid())]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, start_new_session=True)
    sys.stdout.write(str(p.pid) + "\\n" + p.stdout.readline().decode())
    sys.stdout.flush()
    __import__("time").sleep(600)
""")


def test_killing_the_parent_stops_the_whole_tree_with_a_short_grace(demo_root: pathlib.Path,
                                                                    tmp_path: pathlib.Path) -> None:
    # docs/architecture.md: parent death uses a grace of at most 1 s, so the tree goes at once.
    stderr = (tmp_path / "sidecar.log").open("wb")
    parent = subprocess.Popen([sys.executable, "-c", PARENT, *command(demo_root, "demo", 2, [])],
                              stdout=subprocess.PIPE, stderr=stderr, start_new_session=True)
    sidecar_pgid = None
    try:
        assert parent.stdout is not None
        sidecar_pgid = int(parent.stdout.readline())
        assert b'"event": "ready"' in parent.stdout.readline()
        tree = group_pids(sidecar_pgid)
        assert len(tree) == 3  # supervisor + 2 workers
        parent.kill()
        parent.wait(5)
        wait_until(lambda: not group_pids(sidecar_pgid), 10, "no orphans left")
        events = [json.loads(line) for line in (tmp_path / "sidecar.log").read_text().splitlines()
                  if line.startswith("{")]
        (stopping,) = [e for e in events if e.get("event") == "supervisor_stopping"]
        assert stopping["reason"] != "idle" and stopping["grace"] <= 1.0, stopping
    finally:
        stderr.close()
        stop_tree(parent)
        if sidecar_pgid:
            kill_group(sidecar_pgid, grace=0)


def test_stdin_eof_stops_the_tree(demo_root: pathlib.Path) -> None:
    with running_sidecar(demo_root, "demo", workers=2, extra_args=["--exit-on-stdin-eof"],
                         stdin=subprocess.PIPE) as sc:
        assert sc.proc.stdin is not None
        sc.proc.stdin.close()
        assert sc.proc.wait(10) == 0
        wait_until(lambda: not sc.tree_pids(), 10, "every worker has exited")


# What a call that races the shutdown may end with instead of UNAVAILABLE (docs/api.md): gRPC
# cancels a call that reached the server after it began to stop, before its client heard so.
RACED_THE_SHUTDOWN = (grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_sigterm_lets_a_slow_rpc_finish_refuses_new_ones_and_exits_zero(demo_root: pathlib.Path) -> None:
    with running_sidecar(demo_root, "demo", workers=1, extra_args=["--grace", "20", "--batch-chunk", "64"]) as sc:
        stub = sc.stub()
        users = [f"u{i % 600:07d}" for i in range(20_000)]
        stream = stub.BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=users, n=10), timeout=60)
        first = next(stream)
        assert first.index == 0
        os.kill(sc.proc.pid, signal.SIGTERM)

        raced: list[grpc.StatusCode] = []

        def refused() -> grpc.StatusCode | None:
            try:
                sc.stub().Recommend(reco_pb2.RecommendRequest(user_id="u0000001", n=3), timeout=5)
            except grpc.RpcError as e:
                if e.code() in RACED_THE_SHUTDOWN:
                    # sent as the server began to stop (docs/api.md): neither served nor refused
                    raced.append(e.code())
                    return None
                return e.code()
            return None  # not yet: the worker has not heard of the SIGTERM

        assert wait_until(refused, 30, "a new call is refused") == grpc.StatusCode.UNAVAILABLE, raced
        # The stream, unread until now, was in flight all along; it still completes.
        received = 1
        for resp in stream:
            assert resp.index == received
            received += 1
        assert received == len(users)
        assert stream.code() == grpc.StatusCode.OK
        assert sc.proc.wait(30) == 0


def test_max_concurrent_rpcs_excess_is_resource_exhausted(demo_root: pathlib.Path) -> None:
    with running_sidecar(demo_root, "demo", workers=1, extra_args=["--max-concurrent-rpcs", "2",
                                                                   "--batch-chunk", "16"]) as sc:
        stub = sc.stub()
        users = [f"u{i % 600:07d}" for i in range(200_000)]
        streams = [stub.BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=users, n=50), timeout=60)
                   for _ in range(2)]
        for s in streams:
            next(s)  # both are running and, unread, stay in flight
        with pytest.raises(grpc.RpcError) as e:
            stub.Recommend(reco_pb2.RecommendRequest(user_id="u0000001", n=3), timeout=5)
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        for s in streams:
            s.cancel()

        def answered() -> int:
            try:
                return len(stub.Recommend(reco_pb2.RecommendRequest(user_id="u0000001", n=3), timeout=5).items)
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # until the cancellations land
                return 0

        assert wait_until(answered, 30, "a call is admitted once the streams are cancelled") == 3


def test_a_worker_that_cannot_boot_stops_the_restart_loop(demo_copy: pathlib.Path) -> None:
    with running_sidecar(demo_copy, "demo", workers=2) as sc:
        victim = _pid_of(sc.stub(sc.worker_addresses[0]))
        # The served version breaks on disk: a restarted worker cannot open it.
        factors = demo_copy / "demo" / "1" / "item_factors.npy"
        data = factors.read_bytes()
        factors.write_bytes(data[: len(data) // 2])
        os.kill(victim, signal.SIGKILL)
        assert sc.proc.wait(30) == ExitCode.WORKERS_FAILED
        events = [e.get("event") for e in sc.log_events()]
        assert events.count("worker_load_failed") >= 3 and "worker_cannot_boot" in events


def test_workers_share_the_model_pages(demo_root: pathlib.Path) -> None:
    version_dir = str((demo_root / "demo" / "1").resolve())
    with running_sidecar(demo_root, "demo", workers=2) as sc:
        workers = sc.worker_pids()
        assert len(workers) == 2
        for pid in workers:
            mapped = {pathlib.Path(path).name: fields for path, fields in file_mappings(pid).items()
                      if path.startswith(version_dir + "/")}
            for name in ("item_factors.npy", "user_factors.npy", "items.annoy"):
                m = mapped[name]
                # Every resident page of the model's files is a page-cache page the other worker
                # maps too: none private, and each process is charged half (or less) of it.
                assert m["Rss"] > 0, (pid, name, m)
                assert m["Shared_Clean"] == m["Rss"], (pid, name, m)
                assert m["Private_Clean"] == 0 and m["Private_Dirty"] == 0, (pid, name, m)
                assert 2 * m["Pss"] <= m["Rss"], (pid, name, m)


def test_a_host_that_stops_reading_before_ready_gets_a_clean_exit(demo_root: pathlib.Path) -> None:
    proc = subprocess.Popen(command(demo_root, "demo", 2, []), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        assert proc.wait(30) == 0
        assert b"Traceback" not in proc.stderr.read()
    finally:
        stop_tree(proc)
