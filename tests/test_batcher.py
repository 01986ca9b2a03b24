from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from harness.procs import wait_until
from reco_sidecar.serving.batcher import Batcher


def _all_waiting(b: Batcher[str, int, int], in_score: list[int], total: int) -> bool:
    """Every submission is either held inside `score` or queued for the scorer thread (the
    batcher's own queue: nothing outside it can tell a queued call from one not yet made)."""
    return len(in_score) + b._queue.qsize() == total


def test_concurrent_submissions_are_scored_together_and_answered_in_order() -> None:
    sizes: list[int] = []
    in_score: list[int] = []
    gate = threading.Event()

    def score(key: str, queries: Sequence[int]) -> list[int]:
        in_score.extend(queries)
        gate.wait(30)  # hold the first batch so the others queue up behind it
        return [q * 10 for q in queries]

    b: Batcher[str, int, int] = Batcher(score, max_delay=0.002, max_size=64, on_batch=sizes.append)
    results: dict[int, int] = {}

    def call(i: int) -> None:
        b.announce()
        results[i] = b.submit("m", i)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    wait_until(lambda: _all_waiting(b, in_score, 20), 30, "20 submissions held or queued")
    gate.set()
    for t in threads:
        t.join(30)
    b.close()
    assert results == {i: i * 10 for i in range(20)}
    assert sum(sizes) == 20 and max(sizes) > 1 and len(sizes) < 20


def test_queries_for_different_models_are_never_mixed() -> None:
    seen: list[tuple[str, tuple[int, ...]]] = []
    in_score: list[int] = []
    gate = threading.Event()

    def score(key: str, queries: Sequence[int]) -> list[int]:
        in_score.extend(queries)
        gate.wait(30)
        seen.append((key, tuple(queries)))
        return list(queries)

    b: Batcher[str, int, int] = Batcher(score, max_delay=0.0, max_size=64)
    threads = [threading.Thread(target=lambda i=i: b.submit("old" if i % 2 else "new", i, announced=False))
               for i in range(10)]
    for t in threads:
        t.start()
    wait_until(lambda: _all_waiting(b, in_score, 10), 30, "10 submissions held or queued")
    gate.set()
    for t in threads:
        t.join(30)
    b.close()
    assert sum(len(q) for _, q in seen) == 10 and any(len(q) > 1 for _, q in seen), seen
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


def test_a_queued_request_is_not_held_for_company_that_is_not_coming() -> None:
    # With an endless delay, a scorer that waited for company nobody announced would never answer.
    gate = threading.Event()
    in_score: list[int] = []

    def score(key: str, queries: Sequence[int]) -> list[int]:
        in_score.extend(queries)
        if 0 in queries:
            gate.wait(30)  # keeps the batcher busy, so the next call is queued, not scored inline
        return list(queries)

    b: Batcher[str, int, int] = Batcher(score, max_delay=float("inf"), max_size=64)
    results: dict[int, int] = {}

    def call(i: int) -> None:
        b.announce()
        results[i] = b.submit("m", i)

    first = threading.Thread(target=call, args=(0,))
    first.start()
    wait_until(lambda: in_score == [0], 30, "the first call is being scored")
    second = threading.Thread(target=call, args=(1,))
    second.start()
    wait_until(lambda: _all_waiting(b, in_score, 2), 30, "the second call is queued")
    gate.set()
    first.join(30)
    second.join(30)  # bounds a hang only; the endless delay is what would hold it
    b.close()
    assert results == {0: 0, 1: 1}


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
