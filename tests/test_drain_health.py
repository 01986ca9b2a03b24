"""A draining sidecar ends its health Watch streams: each watcher is told NOT_SERVING and its
stream ends, so the watchers a client pool keeps on every worker are not work the drain waits
--grace for. Through the real process tree and real grpc health Watch clients."""

from __future__ import annotations

import pathlib
import signal
import subprocess
import threading

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness.procs import wait_until
from reco_sidecar.serving.names import SERVICE
from tests.support.server import running_sidecar

GRACE = 60.0
WAIT = 30.0  # a bound for a condition to become true, never a timing assertion


class _Watcher:
    """One health Watch on one worker's own address, read to its end on a thread."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.stream = health_pb2_grpc.HealthStub(self.channel).Watch(
            health_pb2.HealthCheckRequest(), timeout=3 * GRACE)
        self.statuses: list[int] = []
        self.ended: grpc.StatusCode | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for message in self.stream:
                self.statuses.append(message.status)
            self.ended = grpc.StatusCode.OK
        except grpc.RpcError as e:
            self.ended = e.code()


def test_sigterm_ends_every_health_watch_with_not_serving_and_does_not_wait_the_grace(
        demo_root: pathlib.Path) -> None:
    args = ["--grace", str(GRACE)]
    with running_sidecar(demo_root, "demo", workers=2, extra_args=args, stop_grace=3 * GRACE) as sc:
        watchers = [_Watcher(address) for address in sc.worker_addresses]
        try:
            serving = health_pb2.HealthCheckResponse.SERVING
            wait_until(lambda: all(w.statuses[-1:] == [serving] for w in watchers), WAIT, "every Watch SERVING")
            listed = health_pb2_grpc.HealthStub(watchers[0].channel).List(health_pb2.HealthListRequest(), timeout=WAIT)
            assert {name: s.status for name, s in listed.statuses.items()} == {"": serving, SERVICE: serving}
            sc.proc.send_signal(signal.SIGTERM)
            for w in watchers:
                w.thread.join(GRACE / 2)
            for w in watchers:
                assert w.statuses[-1:] == [health_pb2.HealthCheckResponse.NOT_SERVING]
                assert w.ended == grpc.StatusCode.OK, f"the Watch ended {w.ended}, not by the server closing it"
            try:
                code = sc.proc.wait(GRACE / 2)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"the sidecar was still draining half its --grace {GRACE:g} s after "
                                     "SIGTERM") from None
            assert code == 0
            exits = [e for e in sc.log_events() if e.get("event") == "worker_exit"]
            assert len(exits) == 2
            # The drain waited for nothing: far from the grace it would wait for open work.
            assert all(e["drained_seconds"] < GRACE / 2 for e in exits), exits
        finally:
            for w in watchers:
                w.stream.cancel()
                w.channel.close()
