"""A worker whose serving event loop is wedged, while the rest of the process runs on, is
noticed and replaced within --worker-timeout: the heartbeat comes from a task on that very
loop (runtime/worker.py `_tick`), not from a thread of its own.

The wedge is made from outside and for real: ptrace stops the loop's thread alone (SIGSTOP
would stop every thread), as a handler blocked for good would hold it. gRPC's own threads
keep running, so the process still accepts connections; only the loop is gone."""

from __future__ import annotations

import pathlib

import grpc
import pytest

from harness.faults import answers, worker_pid
from harness.procs import stat_fields, wait_until
from harness.sidecar import recommender
from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support import threadstop
from tests.support.requires import require
from tests.support.server import running_sidecar

pytestmark = pytest.mark.slow


def _threads(pid: int) -> list[int]:
    return sorted(int(t.name) for t in pathlib.Path(f"/proc/{pid}/task").iterdir())


def test_a_worker_whose_event_loop_is_wedged_is_replaced_within_the_worker_timeout(
        demo_root: pathlib.Path) -> None:
    require(threadstop.available(), "ptrace (CAP_SYS_PTRACE, root)")
    args = ["--worker-timeout", "1.5"]
    with running_sidecar(demo_root, "demo", workers=2, extra_args=args) as sc:
        victim = sc.worker_addresses[0]
        pid = worker_pid(victim)
        assert len(_threads(pid)) > 1
        # asyncio.run runs the loop on the worker's main thread, whose id is the pid.
        with threadstop.stopped_thread(pid):
            # Wedged: the process lives (its other threads run) but its loop answers nothing.
            with recommender(victim) as stub, pytest.raises(grpc.RpcError) as e:
                stub.Recommend(reco_pb2.RecommendRequest(user_id="u0000001", n=3), timeout=1)
            assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            running = [t for t in _threads(pid) if t != pid and (f := stat_fields(t)) and f[0] in "RS"]
            assert running, "only the loop's thread was to be stopped"
            wait_until(lambda: any(ev.get("event") == "worker_timeout" and ev.get("worker_pid") == pid
                                   for ev in sc.log_events()), 30, "the wedged worker to be noticed")
        # (Leaving the block collects the killed worker's exit, which the kernel reports to the
        # tracer first, so that the supervisor hears of it.)
        wait_until(answers(lambda: worker_pid(victim, timeout=1) != pid), 30, "a replacement serving")
        event = next(ev for ev in sc.log_events() if ev.get("event") == "worker_timeout")
        assert "--worker-timeout 1.5" in str(event["reason"])
        with recommender(victim) as stub:
            assert stub.Recommend(reco_pb2.RecommendRequest(user_id="u0000001", n=3), timeout=5).version == 1
