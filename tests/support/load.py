"""Client load for process-tree tests: threads calling the server until told to stop."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

import grpc


@dataclass
class LoadResult:
    ok: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    seen: Counter[Any] = field(default_factory=Counter)
    # Every successful call's return value, and every failure as "CODE: details", in order.
    values: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Every failed call as (started, ended, code name), times from time.monotonic().
    failed_calls: list[tuple[float, float, str]] = field(default_factory=list)
    # Each thread's outcomes in order, "OK" or the code's name: a thread runs one call at a time,
    # so the order says what a client saw on its channel (the drain tests read it).
    by_thread: dict[int, list[str]] = field(default_factory=dict)

    @property
    def failures(self) -> int:
        return sum(self.failed.values())


class Load:
    """`threads` threads each run `call(i)` in a loop; the return value is tallied in `seen`."""

    def __init__(self, call: Callable[[int], Any], threads: int = 4) -> None:
        self._call = call
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.result = LoadResult()
        self._threads = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in range(threads)]

    def _run(self, t: int) -> None:
        i = t
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                value = self._call(i)
            except grpc.RpcError as e:
                with self._lock:
                    self.result.failed[e.code().name] += 1
                    self.result.errors.append(f"{e.code().name}: {e.details()}")
                    self.result.failed_calls.append((started, time.monotonic(), e.code().name))
                    self.result.by_thread.setdefault(t, []).append(e.code().name)
            else:
                with self._lock:
                    self.result.ok += 1
                    self.result.seen[value] += 1
                    self.result.values.append(value)
                    self.result.by_thread.setdefault(t, []).append("OK")
            i += len(self._threads)

    def __enter__(self) -> Self:
        for th in self._threads:
            th.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for th in self._threads:
            th.join(timeout=30)
