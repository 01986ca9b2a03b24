"""The replay's `online` arm answered by a real sidecar (`evaluate --replay --through sidecar`):
the events go through the Feedback RPC in time order, each scored interaction is the item's
rank in the user's Recommend answer, so the replay measures what a client of the sidecar gets.

The sidecar is `serve` in a child process on loopback, on the replay's trained version, with
one worker and online learning in a fresh directory (a journal of an earlier run would make
the replay's event ids duplicates). Feedback returns once the events are in the table every
worker reads (docs/online.md), so a Recommend after it sees them without waiting.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from reco_sidecar.common.errors import Unavailable
from reco_sidecar.host.readyline import wait_ready
from reco_sidecar.online.events import Event

READY_TIMEOUT = 120.0
CALL_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
# Feedback takes at most this many events per message (docs/api.md).
PER_MESSAGE = 1000


class SidecarReplay:
    """Implements replay.Served. Use as a context manager: the sidecar stops at the end."""

    def __init__(self, model_root: pathlib.Path, name: str, version: int) -> None:
        import grpc

        from reco_sidecar.gen.reco.v1 import reco_pb2, reco_pb2_grpc

        self._pb = reco_pb2
        self._online = pathlib.Path(tempfile.mkdtemp(prefix="reco-replay-online-"))
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "reco_sidecar", "serve", "--model-root", str(model_root), "--model", name,
             "--version", str(version), "--port", "0", "--host", "127.0.0.1", "--workers", "1",
             "--online-dir", str(self._online), "--exit-on-stdin-eof"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            ready = wait_ready(self._proc, READY_TIMEOUT)
        except (RuntimeError, TimeoutError) as e:
            self.close()
            raise Unavailable(f"the replay's sidecar did not start: {e}", field="through") from None
        self._channel = grpc.insecure_channel(str(ready["address"]))
        self._stub: Any = reco_pb2_grpc.RecommenderStub(self._channel)  # type: ignore[no-untyped-call]
        self.feedback_calls = self.recommend_calls = 0

    def learn(self, events: Sequence[Event]) -> None:
        """Sends `events` in their order; each must be accepted (the replay's ids are new)."""
        pb = self._pb
        for start in range(0, len(events), PER_MESSAGE):
            chunk = events[start : start + PER_MESSAGE]
            answer = self._stub.Feedback(pb.FeedbackRequest(events=[
                pb.FeedbackEvent(event_id=e.event_id, user_id=e.user_id, item_id=e.item_id, type=e.type,
                                 weight=e.weight or 0.0, time=e.time) for e in chunk]), timeout=CALL_TIMEOUT)
            self.feedback_calls += 1
            if answer.accepted != len(chunk):
                raise Unavailable(f"the sidecar accepted {answer.accepted} of {len(chunk)} replayed events "
                                  f"({answer.duplicates} duplicates)", field="through")

    def rank(self, user_id: str, item_id: str, k: int) -> int:
        """The item's 0-based rank in the user's Recommend answer of `k`, or -1."""
        answer = self._stub.Recommend(self._pb.RecommendRequest(user_id=user_id, n=k, omit_jsonld=True),
                                      timeout=CALL_TIMEOUT)
        self.recommend_calls += 1
        items = [i.item_id for i in answer.items]
        return items.index(item_id) if item_id in items else -1

    def close(self) -> None:
        channel = getattr(self, "_channel", None)
        if channel is not None:
            channel.close()
        if self._proc.stdin is not None:
            self._proc.stdin.close()  # --exit-on-stdin-eof: the sidecar stops by itself
        try:
            self._proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(STOP_TIMEOUT)
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        shutil.rmtree(self._online, ignore_errors=True)

    def __enter__(self) -> SidecarReplay:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
