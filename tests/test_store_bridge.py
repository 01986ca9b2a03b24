"""The supervisor's link to the store follower (runtime/supervisor/store_bridge.py) against a
real follower process and a real S3 server: typed requests and answers, the status, and a
follower that dies is restarted."""

from __future__ import annotations

import pathlib
import select
import time
from collections.abc import Callable
from typing import Any

import pytest

from harness.procs import wait_until
from harness.seaweedfs import S3Server
from reco_sidecar.common.errors import ErrorKind
from reco_sidecar.common.versions import LATEST
from reco_sidecar.runtime import wire
from reco_sidecar.runtime.supervisor.store_bridge import FollowerConfig, Handlers, StoreBridge
from reco_sidecar.store.status import StoreStatus
from tests.support.store import new_bucket, publish_version, store_uri


class Heard:
    def __init__(self) -> None:
        self.answers: list[tuple[Any, ...]] = []
        self.statuses: list[StoreStatus] = []
        self.handlers = Handlers(lambda r, v: self.answers.append(("available", r, v)),
                                 lambda r, kind, _message: self.answers.append(("refused", r, kind)),
                                 self.statuses.append)


def pump(bridge: StoreBridge, heard: Heard, done: Callable[[], bool]) -> Callable[[], bool]:
    """A wait condition that first does what the supervisor's loop does with the follower's
    descriptor, then checks `done`."""

    def step() -> bool:
        fd = bridge.fileno()
        if fd >= 0 and select.select([fd], [], [], 0.05)[0]:
            bridge.readable(heard.handlers)
        bridge.tick(time.monotonic())
        return done()

    return step


def test_requests_answers_status_and_a_restarted_follower(s3_server: S3Server, demo_root: pathlib.Path,
                                                          tmp_path: pathlib.Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = new_bucket(s3_server)
    publish_version(s3_server, bucket, demo_root / "demo" / "1")
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    bridge = StoreBridge(FollowerConfig(store_uri(bucket), "demo", tmp_path, 3, 0.0, s3_server.endpoint,
                                        "warning", "json"))
    bridge.start()
    heard = Heard()
    try:
        assert bridge.wait_initial(120) == wire.Available(wire.INITIAL, 1)
        assert bridge.request((0, 1), 1) and bridge.request((1, 2), 9) and bridge.request((0, 3), LATEST)
        wait_until(pump(bridge, heard, lambda: len(heard.answers) == 3), 120, "three answers")
        expected = [("available", (0, 1), 1), ("refused", (1, 2), ErrorKind.NOT_FOUND), ("available", (0, 3), 1)]
        assert sorted(heard.answers, key=str) == sorted(expected, key=str)
        assert bridge.last_status is not None and bridge.last_status.cached_versions == (1,)
        assert bridge.last_status.uri.startswith(f"s3://{bucket}/")

        first = bridge.proc
        assert first is not None
        first.kill()
        wait_until(pump(bridge, heard, lambda: bridge.proc is not None and bridge.proc is not first), 120,
                   "the follower to be restarted")
        # The restarted follower's first look counts as the watch's: no requester.
        wait_until(pump(bridge, heard, lambda: ("available", None, 1) in heard.answers), 120,
                   "the restarted follower's first answer")
    finally:
        bridge.close()
