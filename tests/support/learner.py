"""Finding the online learner among a sidecar's processes, from outside."""

from __future__ import annotations

import grpc

from harness.procs import wait_until
from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.server import Sidecar


def learner_pid(sc: Sidecar) -> int:
    """The one child of the supervisor that is not a serving worker (once both serve again)."""
    def workers() -> set[int] | None:
        try:
            return {sc.stub(a).GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=10).worker.pid
                    for a in sc.worker_addresses}
        except grpc.RpcError:
            return None
    serving = wait_until(workers, 60, "both workers serving")
    assert serving is not None
    (pid,) = [p for p in sc.worker_pids() if p not in serving]
    return pid
