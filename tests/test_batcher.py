from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from reco_sidecar.serving.batcher import Batcher


def test_concurrent_submissions_are_scored_together_and_answered_in_order() -> None:
    sizes: list[int] = []
    gate = threading.Event()

    def score(key: str, queries: Sequence[int]) -> list[int]:
        gate.wait(5)  # hold the first batch so the others queue up behind it
        return [q * 10 for q in queries]

    b: Batcher[str, int, int] = Batcher(score, max_delay=0.002, max_size=64, on_batch=sizes.append)
    results: dict[int, int] = {}

    def call(i: int) -> None:
        b.announce()
        results[i] = b.submit("m", i)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    gate.set()
    for t in threads:
        t.join(5)
    b.close()
    assert results == {i: i * 10 for i in range(20)}
    assert sum(sizes) == 20 and max(sizes) > 1 and len(sizes) < 20


def test_queries_for_different_models_are_never_mixed() -> None:
    seen: list[tuple[str, tuple[int, ...]]] = []
    gate = threading.Event()

    def score(key: str, queries: Sequence[int]) -> list[int]:
        gate.wait(5)
        seen.append((key, tuple(queries)))
        return list(queries)

    b: Batcher[str, int, int] = Batcher(score, max_delay=0.0, max_size=64)
    threads = [threading.Thread(target=lambda i=i: b.submit("old" if i % 2 else "new", i, announced=False))
               for i in range(10)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    gate.set()
    for t in threads:
        t.join(5)
    b.close()
    for key, queries in seen:
        assert all((q % 2 == 1) == (key == "old") for q in queries)


def test_an_error_reaches_every_caller_of_that_batch_and_the_batcher_survives() -> None:
    def score(key: str, queries: Sequence[int]) -> list[int]:
        if -1 in queries:
            raise RuntimeError("bad query")
        return list(queries)

    b: Batcher[str, int, int] = Batcher(score, max_delay=0.0, max_size=8)
    with pytest.raises(RuntimeError, match="bad query"):
        b.submit("m", -1, announced=False)
    assert b.submit("m", 5, announced=False) == 5
    b.close()


def test_a_lone_request_is_not_held_for_the_full_delay() -> None:
    b: Batcher[str, int, int] = Batcher(lambda k, qs: list(qs), max_delay=2.0, max_size=64)
    b.announce()
    started = time.monotonic()
    assert b.submit("m", 1) == 1
    # nobody else announced a call, so the scorer must not wait out its 2 s delay
    assert time.monotonic() - started < 1.0
    b.close()


def test_a_lone_request_is_scored_in_the_callers_thread() -> None:
    threads: list[str] = []

    def score(key: str, queries: Sequence[int]) -> list[int]:
        threads.append(threading.current_thread().name)
        return list(queries)

    b: Batcher[str, int, int] = Batcher(score, max_delay=0.002, max_size=8)
    b.announce()
    assert b.submit("m", 3) == 3
    b.close()
    assert threads == [threading.current_thread().name]
