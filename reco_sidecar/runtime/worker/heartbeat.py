"""A worker's heartbeat to the supervisor: proof that the worker's serving loop still runs,
plus its call counts for idle detection.

`Heartbeat.beat` is called by the worker's serving loop itself (not by a helper thread of
its own), so a stopped (SIGSTOP) or wedged worker stops beating and the supervisor, which
kills a worker whose beat is later than --worker-timeout, replaces it. While the worker
boots, from the fork until that loop's first beat, `BootBeats` beats from a thread: the
whole boot (model loads, importing gRPC, starting the server) is covered, so a slow boot
on a busy machine is not taken for a hung one, while a worker stopped during its boot
(every thread stops) is still noticed."""

from __future__ import annotations

import threading
from collections.abc import Callable

from reco_sidecar.runtime import wire as m
from reco_sidecar.runtime.channel import Channel

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


class BootBeats:
    """Beats from a thread of its own, started at once, until `stop` (the serving loop's
    first beat, or a failed boot). A wedged serving loop must not be covered by it: the loop
    stops it as soon as it beats itself."""

    def __init__(self, beats: Heartbeat) -> None:
        self._beats = beats
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="boot-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # The first beat at once: the supervisor's deadline runs from the fork.
        while True:
            self._beats.beat()
            if self._done.wait(self._beats.interval):
                return

    def stop(self) -> None:
        """Idempotent; when it returns, this thread sends no more beats."""
        self._done.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
