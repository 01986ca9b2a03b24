"""Supervisor faults found from outside (issue 24): SIGTERM racing a verification, the
watched experiments file (oversized, a FIFO, refused in prepare) and a worker stopped
during a watched rollout. Each test failed against the supervisor before its fix."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import pathlib
import signal

import grpc
import pytest

from harness.faults import huge_file_version, worker_pid
from harness.procs import stat_fields, wait_until
from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.server import Sidecar, running_sidecar

pytestmark = pytest.mark.slow


def _events(sc: Sidecar, name: str) -> list[dict[str, object]]:
    return [e for e in sc.log_events() if e.get("event") == name]


def _verifier_pid(sc: Sidecar, workers: set[int]) -> int:
    children = [p for p in sc.tree_pids()
                if (f := stat_fields(p)) is not None and int(f[1]) == sc.proc.pid and p not in workers]
    return children[0] if len(children) == 1 else 0


def _answered(pid: int) -> bool:
    """The verifier hashed (CPU spent) and is back waiting for its next job: its verdict is
    in the supervisor's socket, unread."""
    f = stat_fields(pid)
    if f is None:
        return False
    try:
        wchan = pathlib.Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False
    return int(f[11]) + int(f[12]) >= 5 and f[0] == "S" and "wait_for_more_packets" in wchan


# -- item 4: SIGTERM and a verdict in the same loop turn --------------------------------------------


def test_sigterm_with_a_verdict_waiting_exits_0_and_drains(demo_copy: pathlib.Path) -> None:
    """The supervisor is stopped while its verifier finishes; SIGTERM arrives; on SIGCONT one
    select returns both the signal and the verdict. The stop drops the verifier: the verdict
    must then be ignored, not read from a closed socket."""
    # Sparse, so no disk is used; large enough that hashing it takes several CPU ticks.
    version = huge_file_version(demo_copy / "demo", 1, 768 * 1024**2)
    for _round in range(3):
        with running_sidecar(demo_copy, "demo", workers=2, extra_args=["--version", "1", "--grace", "5"]) as sc, \
                concurrent.futures.ThreadPoolExecutor(1) as pool:
            workers = {worker_pid(a) for a in sc.worker_addresses}
            pending = pool.submit(sc.stub().Reload, reco_pb2.ReloadRequest(model="demo", version=version.name),
                                  timeout=60)
            wait_until(lambda: _verifier_pid(sc, workers), 30, "the verification to start")
            verifier = _verifier_pid(sc, workers)
            os.kill(sc.proc.pid, signal.SIGSTOP)
            try:
                wait_until(lambda: _answered(verifier), 60, "the verifier to send its verdict")
                os.kill(sc.proc.pid, signal.SIGTERM)
            finally:
                os.kill(sc.proc.pid, signal.SIGCONT)
            assert sc.proc.wait(timeout=30) == 0
            with pytest.raises(grpc.RpcError):
                pending.result(timeout=30)
            wait_until(lambda: sc.tree_pids() == [], 10, "every process of the tree to exit")
            assert not _events(sc, "workers_killed_after_grace")
            assert [e["code"] for e in _events(sc, "supervisor_exit")] == [0]
