"""Dynamic batching on the worker's event loop: concurrent Recommend calls share one matrix
product. Small batches are scored on the loop; large ones off it, in an executor (numpy and
BLAS release the GIL there).

No thread hands a request to another: a caller queues its query and awaits a future; one
drain task per burst takes everything queued and scores it. The wait for company adapts:
the drain waits (at most max_delay after the first queued query, and no longer than
QUIET_GAPS recent inter-arrival gaps without a new one) only while calls are arriving
faster than max_delay; a lone request at low load is scored at once. Calls that arrive
while a batch is being scored queue up and form the next batch without any wait.

Where a batch is scored (`inline_max`): handing a batch to the executor and back costs the
loop a future, a thread wake-up, a self-pipe write and another loop turn, and the GIL passed
twice while other calls are being served: 16-26 % of a busy worker's samples in a profile,
more than the kernel itself for a few queries (docs/performance.md measures both). The
executor buys only that the loop keeps serving I/O while BLAS runs, which matters when a
batch's kernel time is long against the latency targets; so batches of at most `inline_max`
queries are scored on the loop, larger ones in the executor. A lone call still goes through
a drain task, so calls that arrive in the same loop turn share its batch.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Generic, TypeVar

from reco_sidecar.common import logs

log = logs.get(__name__)

K = TypeVar("K")  # what queries must share to be batched together (the model)
Q = TypeVar("Q")
R = TypeVar("R")

# Weight of the newest gap in the moving average of inter-arrival gaps.
_GAP_WEIGHT = 0.2
# A wait ends early once no call has come for this many mean gaps: for arrivals at random
# (Poisson) a gap that long happens 2 % of the time (e^-4), so the stream has most likely
# paused. At 2 (13 %) waits were cut while calls were still coming, batches stayed small and
# each query paid the single-query kernel and its own socket write: against the batched
# floor at 1,000 RPS offered, 1.13-1.32 x its CPU and a p99 of 15-30 ms, against 1.01-1.07 x
# and 14 ms with 4 and a 3 ms max_delay (docs/performance.md).
QUIET_GAPS = 4.0


class LoopBatcher(Generic[K, Q, R]):
    """Must be used from one event loop only (the worker's)."""

    def __init__(
        self,
        score: Callable[[K, Sequence[Q]], Sequence[R]],
        *,
        executor: Executor,
        max_delay: float,
        max_size: int,
        inline_max: int = 0,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._score = score
        self._executor = executor
        self._max_delay = max_delay
        self._max_size = max_size
        self._inline_max = inline_max
        self._on_batch = on_batch
        self._queue: list[tuple[K, Q, asyncio.Future[R]]] = []
        self._first_at = 0.0
        self._draining = False
        self._last_at = -math.inf
        self._gap = math.inf
        self._wake: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None  # the running drain (a reference keeps it alive)

    async def submit(self, key: K, query: Q) -> R:
        loop = asyncio.get_running_loop()
        now = loop.time()
        gap = now - self._last_at
        self._last_at = now
        self._gap = gap if math.isinf(self._gap) else (1 - _GAP_WEIGHT) * self._gap + _GAP_WEIGHT * gap
        future: asyncio.Future[R] = loop.create_future()
        if not self._queue:
            self._first_at = now
        self._queue.append((key, query, future))
        if not self._draining:
            self._draining = True
            self._task = loop.create_task(self._drain())
        elif len(self._queue) >= self._max_size and self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
        return await future

    def _should_wait(self) -> bool:
        return self._max_delay > 0 and len(self._queue) < self._max_size and self._gap < self._max_delay

    async def _gather(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._should_wait():
            end = min(self._first_at + self._max_delay, self._last_at + QUIET_GAPS * self._gap)
            if loop.time() >= end:
                return
            wake: asyncio.Future[None] = loop.create_future()
            self._wake = wake
            timer = loop.call_at(end, _resolve, wake)
            try:
                await wake
            finally:
                timer.cancel()
                self._wake = None

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                await self._gather(loop)
                batch = self._queue[: self._max_size]
                del self._queue[: self._max_size]
                if self._queue:
                    self._first_at = loop.time()
                groups: dict[int, list[tuple[K, Q, asyncio.Future[R]]]] = {}
                for entry in batch:
                    if not entry[2].done():  # a cancelled call needs no answer
                        groups.setdefault(id(entry[0]), []).append(entry)
                for group in groups.values():
                    await self._score_group(loop, group)
        finally:
            self._draining = False

    async def _score_group(self, loop: asyncio.AbstractEventLoop,
                           group: list[tuple[K, Q, asyncio.Future[R]]]) -> None:
        try:
            queries = [q for _, q, _ in group]
            if len(queries) <= self._inline_max:
                results = self._score(group[0][0], queries)
            else:
                results = await loop.run_in_executor(self._executor, self._score, group[0][0], queries)
        except Exception as e:  # handed to each caller, never ends the drain
            log.exception("batch_failed", size=len(group))
            for _, _, future in group:
                if not future.done():
                    future.set_exception(e)
        else:
            for (_, _, future), result in zip(group, results, strict=True):
                if not future.done():
                    future.set_result(result)
        if self._on_batch is not None:
            self._on_batch(len(group))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
