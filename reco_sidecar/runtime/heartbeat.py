"""A worker's heartbeat to the supervisor: proof that the worker's serving loop still runs,
plus its call counts for idle detection.

`Heartbeat.beat` is called by the worker's serving loop itself (not by a helper thread of
its own), so a stopped (SIGSTOP) or wedged worker stops beating and the supervisor, which
kills a worker whose beat is later than --worker-timeout, replaces it. While the worker
boots, before that loop exists, `booting()` beats from a thread so that a worker stopped
during a long model load is noticed too."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from reco_sidecar.runtime import messages as m
from reco_sidecar.runtime.control import Channel

# Beats per timeout: a few missed beats (a GC pause, a busy core) are not a death.
BEATS_PER_TIMEOUT = 5
MAX_INTERVAL = 0.5


def interval(worker_timeout: float) -> float:
    return min(MAX_INTERVAL, worker_timeout / BEATS_PER_TIMEOUT)


class Heartbeat:
    def __init__(self, channel: Channel, slot: int, worker_timeout: float,
                 counts: Callable[[], tuple[int, int]] = lambda: (0, 0)) -> None:
        self._channel = channel
        self._slot = slot
        self.interval = interval(worker_timeout)
        self._counts = counts

    def beat(self) -> bool:
        calls, running = self._counts()
        return self._channel.send(m.Heartbeat(self._slot, calls, running), droppable=True)

    @contextlib.contextmanager
    def booting(self) -> Iterator[None]:
        done = threading.Event()

        def run() -> None:
            while not done.wait(self.interval):
                self.beat()

        thread = threading.Thread(target=run, name="boot-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

