"""Dynamic batching on the worker's event loop: concurrent Recommend calls share one matrix
product, scored off the loop in an executor (numpy and BLAS release the GIL there).

No thread hands a request to another: a caller queues its query and awaits a future; one
drain task per burst takes everything queued and scores it. The wait for company adapts:
the drain waits (at most max_delay after the first queued query, and no longer than about
two recent inter-arrival gaps without a new one) only while calls are arriving faster than
max_delay; a lone request at low load is scored at once. Calls that arrive while a batch is
being scored queue up and form the next batch without any wait.
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


class LoopBatcher(Generic[K, Q, R]):
    """Must be used from one event loop only (the worker's)."""

    def __init__(
        self,
        score: Callable[[K, Sequence[Q]], Sequence[R]],
        *,
        executor: Executor,
        max_delay: float,
        max_size: int,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._score = score
        self._executor = executor
        self._max_delay = max_delay
        self._max_size = max_size
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
            end = min(self._first_at + self._max_delay, self._last_at + 2 * self._gap)
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
            results = await loop.run_in_executor(self._executor, self._score, group[0][0],
                                                 [q for _, q, _ in group])
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
