"""Dynamic batching on the worker's event loop: concurrent Recommend calls share one matrix
product. Small batches are scored on the loop; large ones off it, in an executor (numpy and
BLAS release the GIL there).

No thread hands a request to another: a caller queues its query and awaits a future; one
drain task per burst takes everything queued and scores it. Whether the drain first waits
for company is the wait policy's call (serving/batch_wait.py); the default (`aimd`) waits
only after it has seen concurrency, for a budget that grows while waits gather company and
halves when they do not, so a lone caller is scored at once. Calls that arrive in the same
loop turns as the first, or while a batch is scored, share a batch either way.

A call that is alone in its worker (no other Recommend in flight, nothing queued or being
scored) skips the queue altogether: it is scored in `submit` itself, as an unbatched server
would, with no drain task, future or extra loop turn (1-8 closed-loop callers spread over the
workers are alone most of the time).

Where a batch is scored (`inline_max`): handing a batch to the executor and back costs the
loop a future, a thread wake-up, a self-pipe write and another loop turn, and the GIL passed
twice while other calls are being served: 16-26 % of a busy worker's samples in a profile,
more than the kernel itself for a few queries (docs/performance.md measures both). The
executor buys only that the loop keeps serving I/O while BLAS runs, which matters when a
batch's kernel time is long against the latency targets; so batches of at most `inline_max`
queries are scored on the loop, larger ones in the executor.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Generic, TypeVar

from reco_sidecar.common import logs
from reco_sidecar.serving import batch_wait

log = logs.get(__name__)

K = TypeVar("K")  # what queries must share to be batched together (the model)
Q = TypeVar("Q")
R = TypeVar("R")


def _none_in_flight() -> int:
    return 0


class LoopBatcher(Generic[K, Q, R]):
    """Must be used from one event loop only (the worker's).

    `in_flight()` counts the worker's Recommend calls that have started and not ended (the
    call gate's count); those not inside `submit` are the company the `in-flight` policy
    waits for. `on_batch(size, waited)` is told of every batch scored."""

    def __init__(
        self,
        score: Callable[[K, Sequence[Q]], Sequence[R]],
        *,
        executor: Executor,
        max_delay: float,
        max_size: int,
        inline_max: int = 0,
        on_batch: Callable[[int, bool], None] | None = None,
        in_flight: Callable[[], int] = _none_in_flight,
        policy: str = batch_wait.DEFAULT_POLICY,
    ) -> None:
        self._score = score
        self._executor = executor
        self._max_size = max_size
        self._inline_max = inline_max
        self._on_batch = on_batch
        self._in_flight = in_flight
        self._max_delay = max_delay
        self._policy = batch_wait.policy(policy, max_delay, self.arriving)
        self._queue: list[tuple[K, Q, asyncio.Future[R]]] = []
        self._first_at = 0.0
        self._draining = False
        self._wake: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None  # the running drain (a reference keeps it alive)
        self.submitted = 0  # calls inside `submit` now: queued, being scored, or answered and not yet resumed
        self.waits = 0  # batches whose drain waited for company before scoring
        self.batches = 0

    def arriving(self) -> int:
        """Recommend calls in flight in this worker that have not reached `submit`."""
        return max(0, self._in_flight() - self.submitted)

    async def submit(self, key: K, query: Q) -> R:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._policy.arrived(now)
        if self._alone(now):
            return self._score_alone(key, query)
        future: asyncio.Future[R] = loop.create_future()
        if not self._queue:
            self._first_at = now
        self._queue.append((key, query, future))
        if not self._draining:
            self._draining = True
            self._task = loop.create_task(self._drain())
        elif ((self._policy.wake_on_arrival or len(self._queue) >= self._max_size
               or self._policy.enough(len(self._queue)))
              and self._wake is not None and not self._wake.done()):
            self._wake.set_result(None)
        self.submitted += 1
        try:
            return await future
        finally:
            self.submitted -= 1

    def _alone(self, now: float) -> bool:
        """Nothing queued or being scored, no other Recommend call in flight in this worker
        (the gate's count is this call alone), and a policy that would not wait: no company
        can come, so a drain task, a future and the loop turns between them would only add
        latency. The check and the scoring run without yielding to the loop, so no call can
        slip in between them."""
        return (not self._draining and not self._queue and self._inline_max >= 1
                and self._in_flight() - self.submitted == 1
                and self._policy.deadline(now, now, 1) is None
                and not _loop_busy(asyncio.get_running_loop()))

    def _score_alone(self, key: K, query: Q) -> R:
        started = time.perf_counter()
        try:
            result = self._score(key, [query])[0]
        except Exception:
            log.exception("batch_failed", size=1)
            raise
        self._policy.scored(1, 1, False, time.perf_counter() - started)
        self.batches += 1
        if self._on_batch is not None:
            self._on_batch(1, False)
        return result

    async def _gather(self, loop: asyncio.AbstractEventLoop, seen: int) -> bool:
        """Waits for company while the policy says so; True if it waited at all. `seen`: the
        queue's length when this drain last looked (1 for a new drain: its own query).

        A policy that follows arrivals first waits loop turn by loop turn while each turn
        brings more queries: under load grpc.aio hands the loop one new call every turn or
        two, so a batch scored on the first turn would hold one or two of the calls already
        received. A turn costs microseconds when the loop is idle, and when it is busy it is
        spent answering other calls. A lone call, or calls that stopped coming, end it at once."""
        waited = False
        while len(self._queue) < self._max_size:
            if (self._policy.follows_arrivals and len(self._queue) > seen
                    and loop.time() < self._first_at + self._max_delay):
                seen = len(self._queue)
                waited = True
                await asyncio.sleep(0)
                continue
            end = self._policy.deadline(loop.time(), self._first_at, len(self._queue))
            if end is None or loop.time() >= end:
                break
            waited = True
            wake: asyncio.Future[None] = loop.create_future()
            self._wake = wake
            timer = loop.call_at(end, _resolve, wake)
            try:
                await wake
            finally:
                timer.cancel()
                self._wake = None
            seen = len(self._queue)
        return waited

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        seen = 1
        try:
            while self._queue:
                queued = len(self._queue)
                waited = await self._gather(loop, seen)
                if waited:
                    self.waits += 1
                batch = self._queue[: self._max_size]
                del self._queue[: self._max_size]
                if self._queue:
                    self._first_at = loop.time()
                groups: dict[int, list[tuple[K, Q, asyncio.Future[R]]]] = {}
                for entry in batch:
                    if not entry[2].done():  # a cancelled call needs no answer
                        groups.setdefault(id(entry[0]), []).append(entry)
                for group in groups.values():
                    started = time.perf_counter()
                    await self._score_group(loop, group)
                    self._policy.scored(len(group), min(queued, len(group)), waited,
                                        time.perf_counter() - started)
                    self.batches += 1
                    if self._on_batch is not None:
                        self._on_batch(len(group), waited)
                # what queued while this batch was scored is the next batch, with no wait for
                # more unless more keep coming
                seen = len(self._queue)
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


def _loop_busy(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether other callbacks are ready to run on this loop turn: under load these are the
    next calls' handlers and I/O completions, which grpc.aio hands the loop one or two a turn
    and the gate has not counted yet. asyncio's loop keeps them in `_ready`; a loop without
    it counts as busy, so calls take the queue as before."""
    ready = getattr(loop, "_ready", None)
    return ready is None or len(ready) > 0


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
