"""Dynamic batching: concurrent Recommend calls in one process share one matrix product.

A single scorer thread takes every query already queued. It waits (up to max_delay) for
more only while other Recommend calls have started but not yet queued theirs, so a lone
request at low load is never held back for company that is not coming; when nothing else
is queued, coming or being scored, the caller scores its query itself.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from reco_sidecar.common import logs

log = logs.get(__name__)

K = TypeVar("K")  # what queries must share to be batched together (the model)
Q = TypeVar("Q")
R = TypeVar("R")


class _Slot(Generic[K, Q, R]):
    __slots__ = ("done", "error", "key", "query", "result")

    def __init__(self, key: K, query: Q) -> None:
        self.key = key
        self.query = query
        self.result: R | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()


class Batcher(Generic[K, Q, R]):
    def __init__(
        self,
        score: Callable[[K, Sequence[Q]], Sequence[R]],
        *,
        max_delay: float,
        max_size: int,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._score = score
        self._max_delay = max_delay
        self._max_size = max_size
        self._on_batch = on_batch
        self._queue: queue.SimpleQueue[_Slot[K, Q, R] | None] = queue.SimpleQueue()
        self._coming = 0
        self._coming_lock = threading.Lock()
        self._busy = False
        self._inline = 0
        self._thread = threading.Thread(target=self._run, name="batcher", daemon=True)
        self._thread.start()

    def announce(self) -> None:
        """A call will submit soon (it is still parsing and validating)."""
        with self._coming_lock:
            self._coming += 1

    def withdraw(self) -> None:
        """An announced call will not submit after all."""
        with self._coming_lock:
            self._coming -= 1

    def submit(self, key: K, query: Q, *, announced: bool = True) -> R:
        if announced:
            self.withdraw()
        with self._coming_lock:
            # Nobody to batch with: handing over to the scorer thread would only add latency.
            inline = self._coming <= 0 and not self._busy and self._inline == 0 and self._queue.empty()
            if inline:
                self._inline += 1
        if inline:
            try:
                result = self._score(key, [query])[0]
            finally:
                with self._coming_lock:
                    self._inline -= 1
            if self._on_batch is not None:
                self._on_batch(1)
            return result
        slot: _Slot[K, Q, R] = _Slot(key, query)
        self._queue.put(slot)
        slot.done.wait()
        if slot.error is not None:
            raise slot.error
        assert slot.result is not None
        return slot.result

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _gather(self, first: _Slot[K, Q, R]) -> list[_Slot[K, Q, R]] | None:
        batch = [first]
        deadline = time.monotonic() + self._max_delay
        while len(batch) < self._max_size:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                if self._coming <= 0:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=min(remaining, 0.0005))
                except queue.Empty:
                    continue
            if item is None:
                self._queue.put(None)
                break
            batch.append(item)
        return batch

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            self._busy = True
            batch = self._gather(first) or [first]
            groups: dict[int, list[_Slot[K, Q, R]]] = {}
            for slot in batch:
                groups.setdefault(id(slot.key), []).append(slot)
            for slots in groups.values():
                self._score_group(slots)
            self._busy = False

    def _score_group(self, slots: list[_Slot[K, Q, R]]) -> None:
        try:
            results = self._score(slots[0].key, [s.query for s in slots])
            for slot, result in zip(slots, results, strict=True):
                slot.result = result
        except BaseException as e:  # handed to each caller, never kills the scorer thread
            log.exception("batch_failed", size=len(slots))
            for slot in slots:
                slot.error = e
        if self._on_batch is not None:
            self._on_batch(len(slots))
        for slot in slots:
            slot.done.set()
