"""When the batcher's drain waits for company before scoring what is queued.

Waiting pays only when another query will reach the queue within the wait: then the two
share one matrix product and one loop turn. It costs every queued caller the wait. A
closed-loop caller's next query cannot exist until this one is answered, so any wait for it
is pure loss; and under load the queue fills by itself while the previous batch is scored.
The policies below are the candidates measured against each other (docs/performance.md).
`aimd` is the default: the only one that both never waits for a lone caller and still forms
batches when the worker is saturated (mean 3-4 queries at c32 and 1,000 RPS offered, where
`in-flight` and `budget` stayed near 1 and `timer` at 1.3-1.6).

- `in-flight`: wait only for company that is already on its way: a Recommend call in flight
  in this worker (counted by the call gate) that has not reached the queue, or more queries
  reaching the queue on every loop turn (a busy worker gets new calls from grpc.aio one a
  turn or two; the drain follows them turn by turn and scores once a turn brings none).
  Otherwise score at once whatever queued while the previous batch was scored. No clock and
  no estimate: a lone caller's query is scored on the drain's first turn.
- `timer`: the earlier policy: wait up to max_delay, ending after QUIET_GAPS mean gaps
  without an arrival, whenever calls arrive faster than max_delay. The inter-arrival rate
  cannot tell a few closed-loop callers from an open stream, so it waits for callers who
  are waiting for it.
- `aimd`: a wait budget moved like Clipper's batch size (additive increase, multiplicative
  decrease): added to when a wait gathered company or a batch found several queries queued
  without waiting, halved when a wait gathered none. It starts at zero and grows only on
  evidence of concurrency, so a lone caller never waits; a few waits that gather nobody
  bring it back to zero. A wait also ends as soon as the queue holds as many queries as the
  largest batch of the last second (`Peak`): with a few closed-loop callers that is every
  caller, and nobody else can come until they are answered. An open stream or a saturated
  worker keeps waiting out its budget, since its largest batch is larger than most queues.
- `budget`: wait at most one single-query kernel run, and only while the arrival rate
  promises a query within it (mean gap shorter than the kernel's cost).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol

from reco_sidecar.settings import BATCH_WAIT_POLICIES

POLICIES = BATCH_WAIT_POLICIES
DEFAULT_POLICY = POLICIES[0]

# Weight of the newest sample in the moving averages (inter-arrival gap, kernel time).
_WEIGHT = 0.2
# `timer`: a wait ends once no call has come for this many mean gaps: for arrivals at random
# (Poisson) a gap that long happens 2 % of the time (e^-4), so the stream has most likely
# paused (at 2, 13 %: waits were cut while calls still came).
QUIET_GAPS = 4.0
# `aimd`: the budget moves by this share of max_delay per batch, and a budget below a
# quarter of a step counts as none.
_AIMD_STEP = 0.1


# `aimd`: how long the largest recent batch is remembered: a second holds hundreds of batches
# at any load where waiting pays, and lets a burst's large batches stop counting soon after.
PEAK_SECONDS = 1.0


class WaitPolicy(Protocol):
    # True when the drain must re-decide on every arrival (not only when the batch is full)
    wake_on_arrival: bool
    # True when the drain also waits loop turn by loop turn while each turn brings queries
    follows_arrivals: bool

    def arrived(self, now: float) -> None: ...

    def deadline(self, now: float, first_at: float, queued: int) -> float | None:
        """When the drain stops waiting for company; None (or a time already past): score now."""

    def scored(self, size: int, queued_at_start: int, waited: bool, seconds: float) -> None: ...

    def enough(self, queued: int) -> bool:
        """True when a wait should end now that `queued` queries are queued (the drain is woken)."""


class InFlight:
    """Waits only while `arriving()` (calls in flight in the worker, not yet queued) is
    positive; at most max_delay after the first queued query, in case such a call ends
    without reaching the queue."""

    wake_on_arrival = True
    follows_arrivals = True

    def __init__(self, max_delay: float, arriving: Callable[[], int]) -> None:
        self._max_delay = max_delay
        self._arriving = arriving

    def arrived(self, now: float) -> None:
        pass

    def deadline(self, now: float, first_at: float, queued: int) -> float | None:
        if self._max_delay <= 0 or self._arriving() <= 0:
            return None
        return first_at + self._max_delay

    def scored(self, size: int, queued_at_start: int, waited: bool, seconds: float) -> None:
        pass

    def enough(self, queued: int) -> bool:
        return False


class _Gaps:
    """Moving average of the gaps between arrivals."""

    def __init__(self) -> None:
        self.last = -math.inf
        self.mean = math.inf

    def arrived(self, now: float) -> None:
        gap = now - self.last
        self.last = now
        self.mean = gap if math.isinf(self.mean) else (1 - _WEIGHT) * self.mean + _WEIGHT * gap


class Timer:
    wake_on_arrival = False
    follows_arrivals = False

    def __init__(self, max_delay: float) -> None:
        self._max_delay = max_delay
        self._gaps = _Gaps()

    def arrived(self, now: float) -> None:
        self._gaps.arrived(now)

    def deadline(self, now: float, first_at: float, queued: int) -> float | None:
        if self._max_delay <= 0 or self._gaps.mean >= self._max_delay:
            return None
        return min(first_at + self._max_delay, self._gaps.last + QUIET_GAPS * self._gaps.mean)

    def scored(self, size: int, queued_at_start: int, waited: bool, seconds: float) -> None:
        pass

    def enough(self, queued: int) -> bool:
        return False


class Peak:
    """The largest batch scored in the last PEAK_SECONDS or so: the larger of this window's
    and the last one's, so it never forgets a batch sooner than one window after it."""

    def __init__(self, seconds: float = PEAK_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds = seconds
        self._clock = clock
        self._window = -1
        self._this = 0
        self._last = 0

    def add(self, size: int) -> None:
        window = int(self._clock() / self._seconds)
        if window != self._window:
            self._last = self._this if window == self._window + 1 else 0
            self._this, self._window = 0, window
        self._this = max(self._this, size)

    @property
    def value(self) -> int:
        window = int(self._clock() / self._seconds)
        if window == self._window:
            return max(self._this, self._last)
        return self._this if window == self._window + 1 else 0


class Aimd:
    wake_on_arrival = False
    follows_arrivals = False

    def __init__(self, max_delay: float, peak: Peak | None = None) -> None:
        self._max_delay = max_delay
        self._step = _AIMD_STEP * max_delay
        self.budget = 0.0
        self.peak = peak if peak is not None else Peak()

    def arrived(self, now: float) -> None:
        pass

    def deadline(self, now: float, first_at: float, queued: int) -> float | None:
        return first_at + self.budget if self.budget > 0 and not self.enough(queued) else None

    def enough(self, queued: int) -> bool:
        return queued >= self.peak.value

    def scored(self, size: int, queued_at_start: int, waited: bool, seconds: float) -> None:
        self.peak.add(size)
        if (waited and size > queued_at_start) or (not waited and queued_at_start > 1):
            self.budget = min(self._max_delay, self.budget + self._step)
        elif waited:
            self.budget /= 2
            if self.budget < self._step / 4:
                self.budget = 0.0


class Budget:
    wake_on_arrival = False
    follows_arrivals = False

    def __init__(self, max_delay: float) -> None:
        self._max_delay = max_delay
        self._gaps = _Gaps()
        self._kernel = 0.0  # moving average of one query's scoring time (0: not measured yet)

    def arrived(self, now: float) -> None:
        self._gaps.arrived(now)

    def deadline(self, now: float, first_at: float, queued: int) -> float | None:
        wait = min(self._max_delay, self._kernel)
        if wait <= 0 or self._gaps.mean >= wait:
            return None
        return first_at + wait

    def scored(self, size: int, queued_at_start: int, waited: bool, seconds: float) -> None:
        if size == 1:
            self._kernel = seconds if not self._kernel else (1 - _WEIGHT) * self._kernel + _WEIGHT * seconds

    def enough(self, queued: int) -> bool:
        return False


def policy(name: str, max_delay: float, arriving: Callable[[], int]) -> WaitPolicy:
    if name == "in-flight":
        return InFlight(max_delay, arriving)
    if name == "timer":
        return Timer(max_delay)
    if name == "aimd":
        return Aimd(max_delay)
    if name == "budget":
        return Budget(max_delay)
    raise ValueError(f"batch wait policy: {name!r} is not one of {', '.join(POLICIES)}")
