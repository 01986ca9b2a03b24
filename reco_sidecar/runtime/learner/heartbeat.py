"""The learner's heartbeat to the supervisor, as a worker's (runtime/worker/heartbeat.py):
proof that the learner's event loop still runs. The supervisor kills a learner whose last
beat is older than --worker-timeout and forks a replacement, which replays the journal.

Beats come from the loop itself (`beat_forever`), so a stopped (SIGSTOP) or wedged learner
stops beating. The long synchronous step that is the learner's work, not a hang (replaying
the journal and the first solve at start, before the loop runs), runs under `covered`,
which beats from a thread meanwhile: on the benchmark model it takes longer than any sane
timeout. A learner stopped during it is still noticed, since every thread stops. (A
version a reload brings is solved on a thread of its own while the loop beats.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable, Iterator

from reco_sidecar.runtime import wire as m
from reco_sidecar.runtime.channel import Channel

# As a worker's: a few missed beats (a GC pause, a busy core) are not a death.
BEATS_PER_TIMEOUT = 5
MAX_INTERVAL = 0.5


class Beats:
    def __init__(self, channel: Channel, timeout: float, events: Callable[[], int]) -> None:
        self._channel = channel
        self._events = events
        self.interval = min(MAX_INTERVAL, timeout / BEATS_PER_TIMEOUT)

    def beat(self) -> None:
        # Droppable: a stopped supervisor must not stop the learner; the next beat replaces it.
        self._channel.send(m.LearnerHeartbeat(os.getpid(), self._events()), droppable=True)

    async def beat_forever(self) -> None:
        while True:
            self.beat()
            await asyncio.sleep(self.interval)

    @contextlib.contextmanager
    def covered(self) -> Iterator[None]:
        """Beats from a thread until the block ends (it blocks the loop's own beats)."""
        done = threading.Event()

        def run() -> None:
            while True:
                self.beat()
                if done.wait(self.interval):
                    return

        thread = threading.Thread(target=run, name="learner-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
