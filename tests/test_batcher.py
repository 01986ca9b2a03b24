"""The event-loop batcher with a real executor and a recording score function."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from reco_sidecar.serving.batch_wait import POLICIES, Aimd, Budget, Peak
from reco_sidecar.serving.batcher import LoopBatcher


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=2) as p:
        yield p


async def closed_loop(b: LoopBatcher[str, int, int], gate: dict[str, int], n: int, think: int = 0) -> list[int]:
    """One caller sending its next query when the last is answered, counted in flight by the
    gate from before `submit` until after it (as the call gate counts a Recommend); `think`
    loop turns pass before each query (the answer's way back and the next query's way in)."""
    out = []
    for i in range(n):
        for _ in range(think):
            await asyncio.sleep(0)
        gate["in_flight"] += 1
        try:
            out.append(await b.submit("m", i))
        finally:
            gate["in_flight"] -= 1
    return out


def test_calls_arriving_while_a_batch_is_scored_are_scored_together_in_order(pool: ThreadPoolExecutor) -> None:
    sizes: list[int] = []
    gate = threading.Event()

    def score(key: str, queries: Sequence[int]) -> list[int]:
        gate.wait(5)  # hold the first batch so the others queue up behind it
        return [q * 10 for q in queries]

    async def main() -> list[int]:
        b: LoopBatcher[str, int, int] = LoopBatcher(score, executor=pool, max_delay=0.0, max_size=64,
                                                    on_batch=lambda size, waited: sizes.append(size))
        first = asyncio.ensure_future(b.submit("m", 0))
        await asyncio.sleep(0)
        rest = [asyncio.ensure_future(b.submit("m", i)) for i in range(1, 20)]
        await asyncio.sleep(0)
        gate.set()
        return list(await asyncio.gather(first, *rest))

    assert asyncio.run(main()) == [i * 10 for i in range(20)]
    # the first alone, the 19 that queued behind it as one batch
    assert sizes == [1, 19]


def test_queries_for_different_models_are_never_mixed(pool: ThreadPoolExecutor) -> None:
    seen: list[tuple[str, tuple[int, ...]]] = []

    def score(key: str, queries: Sequence[int]) -> list[int]:
        seen.append((key, tuple(queries)))
        return list(queries)

    async def main() -> list[int]:
        b: LoopBatcher[str, int, int] = LoopBatcher(score, executor=pool, max_delay=0.0, max_size=64)
        return list(await asyncio.gather(*(b.submit("old" if i % 2 else "new", i) for i in range(10))))

    assert asyncio.run(main()) == list(range(10))
    assert len(seen) > 1
    for key, queries in seen:
        assert all((q % 2 == 1) == (key == "old") for q in queries)


def test_an_error_reaches_every_caller_of_that_batch_and_the_batcher_survives(pool: ThreadPoolExecutor) -> None:
    def score(key: str, queries: Sequence[int]) -> list[int]:
        if -1 in queries:
            raise RuntimeError("bad query")
        return list(queries)

    async def main() -> int:
        b: LoopBatcher[str, int, int] = LoopBatcher(score, executor=pool, max_delay=0.0, max_size=8)
        with pytest.raises(RuntimeError, match="bad query"):
            await b.submit("m", -1)
        return await b.submit("m", 5)

    assert asyncio.run(main()) == 5


@pytest.mark.parametrize("policy", POLICIES)
def test_a_lone_request_does_not_wait_for_company(pool: ThreadPoolExecutor, policy: str) -> None:
    batches: list[tuple[int, bool]] = []

    async def main() -> int:
        # an hour of allowed delay: only a policy that does not wait lets this finish
        b: LoopBatcher[str, int, int] = LoopBatcher(lambda k, qs: list(qs), executor=pool, max_delay=3600.0,
                                                    max_size=64, on_batch=lambda size, waited:
                                                    batches.append((size, waited)), policy=policy)
        return await asyncio.wait_for(b.submit("m", 1), timeout=60)

    assert asyncio.run(main()) == 1 and batches == [(1, False)]


def test_a_closed_loop_caller_is_never_made_to_wait(pool: ThreadPoolExecutor) -> None:
    """One caller, sending its next query when the last is answered, counted in flight by
    the gate from before `submit` until after it: no batch waits, however fast the calls
    come (the `timer` policy waited on every one). Then four such callers: a batch waits
    only when company is visibly arriving (more queries queued on the loop turn before), so
    every batch that waited was shared."""
    gate = {"in_flight": 0}
    batches: list[tuple[int, bool]] = []

    async def main() -> list[int]:
        b: LoopBatcher[str, int, int] = LoopBatcher(lambda k, qs: list(qs), executor=pool, max_delay=3600.0,
                                                    max_size=64, on_batch=lambda size, waited:
                                                    batches.append((size, waited)),
                                                    in_flight=lambda: gate["in_flight"], policy="in-flight")
        one = await asyncio.wait_for(closed_loop(b, gate, 50), timeout=60)
        assert b.waits == 0 and batches == [(1, False)] * 50
        four = await asyncio.wait_for(asyncio.gather(*(closed_loop(b, gate, 50) for _ in range(4))), timeout=60)
        assert b.batches == len(batches)
        return one + [x for part in four for x in part]

    assert asyncio.run(main()) == list(range(50)) * 5
    assert sum(size for size, _ in batches) == 250
    assert all(size > 1 for size, waited in batches if waited)
    # the four callers' queries, each sent while the others' were queued, shared products
    assert max(size for size, _ in batches) > 1


def test_the_drain_follows_arrivals_turn_by_turn_and_stops_when_they_stop(pool: ThreadPoolExecutor) -> None:
    """Calls reaching the queue one per loop turn (as grpc.aio hands a busy loop new calls):
    the drain waits while each turn brings one, and scores them together once a turn brings
    none."""
    batches: list[tuple[int, bool]] = []

    async def main() -> list[int]:
        b: LoopBatcher[str, int, int] = LoopBatcher(lambda k, qs: list(qs), executor=pool, max_delay=3600.0,
                                                    max_size=64, on_batch=lambda size, waited:
                                                    batches.append((size, waited)), policy="in-flight")
        calls = [asyncio.ensure_future(b.submit("m", 0)), asyncio.ensure_future(b.submit("m", 1))]
        for i in range(2, 6):
            await asyncio.sleep(0)
            calls.append(asyncio.ensure_future(b.submit("m", i)))
        return list(await asyncio.wait_for(asyncio.gather(*calls), timeout=60))

    assert asyncio.run(main()) == list(range(6))
    assert batches == [(6, True)]


def test_the_drain_waits_for_a_call_in_flight_that_has_not_reached_the_queue(pool: ThreadPoolExecutor) -> None:
    """Two calls entered the worker; one is queued, the other still on its way (the gate
    counts it, `submit` has not seen it). The drain waits for it (an hour is allowed), and
    both are scored in one product as soon as it comes."""
    gate = {"in_flight": 2}
    batches: list[tuple[int, bool]] = []

    async def main() -> list[int]:
        b: LoopBatcher[str, int, int] = LoopBatcher(lambda k, qs: list(qs), executor=pool, max_delay=3600.0,
                                                    max_size=64, on_batch=lambda size, waited:
                                                    batches.append((size, waited)),
                                                    in_flight=lambda: gate["in_flight"], policy="in-flight")
        first = asyncio.ensure_future(b.submit("m", 1))
        for _ in range(5):
            await asyncio.sleep(0)  # loop turns: the drain has started and is waiting
        assert not first.done() and b.arriving() == 1
        second = asyncio.ensure_future(b.submit("m", 2))
        return list(await asyncio.wait_for(asyncio.gather(first, second), timeout=60))

    assert asyncio.run(main()) == [1, 2]
    assert batches == [(2, True)]


def test_a_wait_for_a_call_that_never_queues_ends_at_the_max_delay(pool: ThreadPoolExecutor) -> None:
    """A call counted in flight that never reaches the queue (answered from the popular list,
    refused): the wait ends at max_delay and the queued query is scored."""
    batches: list[tuple[int, bool]] = []

    async def main() -> int:
        b: LoopBatcher[str, int, int] = LoopBatcher(lambda k, qs: list(qs), executor=pool, max_delay=0.005,
                                                    max_size=64, on_batch=lambda size, waited:
                                                    batches.append((size, waited)), in_flight=lambda: 2,
                                                    policy="in-flight")
        return await asyncio.wait_for(b.submit("m", 7), timeout=60)

    assert asyncio.run(main()) == 7
    assert batches == [(1, True)]


def test_aimd_never_makes_a_lone_caller_wait_and_forgets_a_burst(pool: ThreadPoolExecutor) -> None:
    """The default policy. A closed-loop caller alone: no wait, ever. A burst (concurrency
    seen) gives the budget a step; then, alone again, a few waits gather nobody and the
    budget is back to zero: the caller is scored at once again."""
    batches: list[tuple[int, bool]] = []

    async def main() -> None:
        b: LoopBatcher[str, int, int] = LoopBatcher(lambda k, qs: list(qs), executor=pool, max_delay=0.003,
                                                    max_size=64, on_batch=lambda size, waited:
                                                    batches.append((size, waited)))
        for i in range(50):
            assert await asyncio.wait_for(b.submit("m", i), timeout=60) == i
        assert b.waits == 0
        assert await asyncio.wait_for(asyncio.gather(*(b.submit("m", i) for i in range(8))), timeout=60) \
            == list(range(8))
        for i in range(50):
            assert await asyncio.wait_for(b.submit("m", i), timeout=60) == i
        assert 1 <= b.waits <= 5
        assert batches[-40:] == [(1, False)] * 40

    asyncio.run(main())


def test_aimd_budget_grows_while_waits_gather_company_and_halves_when_they_do_not() -> None:
    p = Aimd(0.003)
    assert p.deadline(0.0, 0.0, 1) is None  # no budget yet: no wait
    p.scored(3, 3, False, 0.001)  # three queued without a wait: concurrency, add a step
    assert p.budget == pytest.approx(0.0003)
    p.scored(4, 1, True, 0.001)  # the wait gathered company
    assert p.budget == pytest.approx(0.0006)
    assert p.deadline(1.0, 1.0, 1) == pytest.approx(1.0006)
    p.scored(1, 1, True, 0.001)  # it gathered none
    assert p.budget == pytest.approx(0.0003)
    for _ in range(3):
        p.scored(1, 1, True, 0.001)
    assert p.budget == 0.0


def test_a_peak_remembers_the_largest_batch_for_one_to_two_windows() -> None:
    now = [10.2]
    peak = Peak(1.0, clock=lambda: now[0])
    assert peak.value == 0
    peak.add(5)
    peak.add(2)
    assert peak.value == 5
    now[0] = 11.9  # the next window: the last one's largest still counts
    peak.add(3)
    assert peak.value == 5
    now[0] = 12.1  # two windows on: only the one before (3)
    assert peak.value == 3
    peak.add(1)
    assert peak.value == 3
    now[0] = 15.0  # windows with no batch at all: nothing is remembered
    assert peak.value == 0
    peak.add(2)
    assert peak.value == 2


def test_aimd_ends_a_wait_once_as_many_are_queued_as_the_largest_recent_batch() -> None:
    now = [0.0]
    p = Aimd(0.003, Peak(1.0, clock=lambda: now[0]))
    p.scored(2, 2, False, 0.001)  # two queued without a wait: a budget, and a peak of two
    assert p.deadline(0.0, 0.0, 1) == pytest.approx(0.0003)  # one queued: the other may come
    assert p.enough(2) and p.deadline(0.0, 0.0, 2) is None  # both here: score at once
    p.scored(6, 2, True, 0.001)  # a larger batch later: two queued is no longer everyone
    assert not p.enough(2) and p.deadline(0.0, 0.0, 2) is not None
    now[0] = 2.5  # two windows later the large batch is forgotten
    assert p.enough(1) and p.deadline(2.5, 2.5, 1) is None


def test_two_closed_loop_callers_are_not_made_to_wait_for_a_third(pool: ThreadPoolExecutor) -> None:
    """Two callers, each sending its next query when the last is answered (the second a few
    loop turns later than the first), with waits of up to an hour allowed: once both are
    queued nobody else can come, so each wait ends when the second arrives. Under the budget
    alone each shared batch waited out its budget (steps of six minutes here), so 200 queries
    would not be answered within the minute; here they are, and every wait ended with both
    queued. The callers are stopped once they are counted: whichever is left alone after the
    other stops waits out the budget once, by design (docs/operations.md, Batching)."""
    gate = {"in_flight": 0}
    batches: list[tuple[int, bool]] = []

    async def main() -> None:
        b: LoopBatcher[str, int, int] = LoopBatcher(lambda k, qs: list(qs), executor=pool, max_delay=3600.0,
                                                    max_size=64, inline_max=16, on_batch=lambda size, waited:
                                                    batches.append((size, waited)),
                                                    in_flight=lambda: gate["in_flight"])
        callers = [asyncio.create_task(closed_loop(b, gate, 10**6, think)) for think in (0, 3)]
        try:
            async with asyncio.timeout(60):
                while sum(size for size, _ in batches) < 200:
                    await asyncio.sleep(0.01)
        finally:
            for c in callers:
                c.cancel()
            await asyncio.gather(*callers, return_exceptions=True)

    asyncio.run(main())
    waited = [size for size, w in batches if w]
    assert len(waited) > 50, f"the two callers rarely shared a waited batch: {batches[:20]}"
    assert all(size == 2 for size in waited)


def test_budget_waits_one_kernel_run_only_when_arrivals_come_faster() -> None:
    p = Budget(0.003)
    p.scored(1, 1, False, 0.0004)  # one query's kernel: 0.4 ms
    for t in range(10):
        p.arrived(t * 0.001)  # a call every millisecond: slower than the kernel
    assert p.deadline(0.01, 0.01, 1) is None
    for t in range(40):
        p.arrived(0.01 + t * 0.0001)  # every 0.1 ms
    assert p.deadline(0.02, 0.02, 1) == pytest.approx(0.0204)


def test_calls_arriving_close_together_wait_briefly_and_share_a_batch(pool: ThreadPoolExecutor) -> None:
    sizes: list[int] = []

    async def main() -> list[int]:
        b: LoopBatcher[str, int, int] = LoopBatcher(lambda k, qs: list(qs), executor=pool, max_delay=3600.0,
                                                    max_size=8, on_batch=lambda size, waited: sizes.append(size))
        # a burst: arrivals far closer together than the allowed delay
        calls = [asyncio.ensure_future(b.submit("m", i)) for i in range(16)]
        return list(await asyncio.wait_for(asyncio.gather(*calls), timeout=60))

    assert asyncio.run(main()) == list(range(16))
    # the drain waited for company until max_size, twice
    assert sizes == [8, 8]


def test_a_timer_wait_for_company_ends_once_the_calls_pause(pool: ThreadPoolExecutor) -> None:
    """The `timer` policy. A burst, then nothing: the drain stops waiting after a few of the burst's gaps (an hour
    is allowed, the batch is far from full) and scores what came. The first call, with no
    arrivals before it, is scored at once; the four after it wait for company together."""
    sizes: list[int] = []

    async def main() -> list[int]:
        b: LoopBatcher[str, int, int] = LoopBatcher(lambda k, qs: list(qs), executor=pool, max_delay=3600.0,
                                                    max_size=64, on_batch=lambda size, waited: sizes.append(size),
                                                    policy="timer")
        calls = []
        for i in range(5):
            calls.append(asyncio.ensure_future(b.submit("m", i)))
            await asyncio.sleep(0.001)  # arrivals a millisecond apart, then a pause
        return list(await asyncio.wait_for(asyncio.gather(*calls), timeout=60))

    assert asyncio.run(main()) == list(range(5))
    # [1, 4] on a quiet machine; a stall of several ms between two arrivals may split the four
    assert sizes[0] == 1 and sum(sizes) == 5 and max(sizes) >= 2, sizes


def test_a_cancelled_caller_is_left_out_and_the_others_answered(pool: ThreadPoolExecutor) -> None:
    gate = threading.Event()
    scored: list[tuple[int, ...]] = []

    def score(key: str, queries: Sequence[int]) -> list[int]:
        gate.wait(5)
        scored.append(tuple(queries))
        return list(queries)

    async def main() -> list[int]:
        b: LoopBatcher[str, int, int] = LoopBatcher(score, executor=pool, max_delay=0.0, max_size=64)
        first = asyncio.ensure_future(b.submit("m", 0))
        await asyncio.sleep(0)
        doomed = asyncio.ensure_future(b.submit("m", 1))
        kept = asyncio.ensure_future(b.submit("m", 2))
        await asyncio.sleep(0)
        doomed.cancel()
        gate.set()
        return [await first, await kept]

    assert asyncio.run(main()) == [0, 2]
    assert scored == [(0,), (2,)]


def test_small_batches_are_scored_on_the_loop_and_large_ones_in_the_executor(pool: ThreadPoolExecutor) -> None:
    where: list[tuple[int, bool]] = []

    def score(key: str, queries: Sequence[int]) -> list[int]:
        where.append((len(queries), threading.current_thread() is threading.main_thread()))
        return [q * 10 for q in queries]

    async def main() -> list[int]:
        b: LoopBatcher[str, int, int] = LoopBatcher(score, executor=pool, max_delay=3600.0, max_size=8,
                                                    inline_max=4, policy="in-flight")
        # a lone call, then a burst: one batch of max_size and the three left over
        first = await b.submit("m", 0)
        calls = [asyncio.ensure_future(b.submit("m", i)) for i in range(1, 12)]
        return [first, *await asyncio.wait_for(asyncio.gather(*calls), timeout=60)]

    assert asyncio.run(main()) == [i * 10 for i in range(12)]
    assert where == [(1, True), (8, False), (3, True)]


def test_an_error_scoring_on_the_loop_reaches_that_batch_and_the_batcher_survives(
        pool: ThreadPoolExecutor) -> None:
    def score(key: str, queries: Sequence[int]) -> list[int]:
        if -1 in queries:
            raise RuntimeError("bad query")
        return list(queries)

    async def main() -> list[int]:
        b: LoopBatcher[str, int, int] = LoopBatcher(score, executor=pool, max_delay=0.0, max_size=8, inline_max=8)
        with pytest.raises(RuntimeError, match="bad query"):
            await b.submit("m", -1)
        # submitted in one loop turn: one batch of six, which fails as a whole
        calls = [asyncio.ensure_future(b.submit("m", -1 if i == 3 else i)) for i in range(6)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)
        return [await b.submit("m", 5), *await asyncio.gather(*(b.submit("m", i) for i in range(3)))]

    assert asyncio.run(main()) == [5, 0, 1, 2]


def test_a_call_alone_in_its_worker_is_scored_in_submit_without_a_drain(pool: ThreadPoolExecutor) -> None:
    """Nothing queued, nothing being scored and no other call in flight: the call is scored
    in `submit` itself, on the loop, with no drain task. Callers that overlap still queue and
    share products."""
    gate = {"in_flight": 0}
    batches: list[tuple[int, bool]] = []
    threads: set[str] = set()

    def score(k: str, qs: Sequence[int]) -> list[int]:
        threads.add(threading.current_thread().name)
        return list(qs)

    async def main() -> None:
        b: LoopBatcher[str, int, int] = LoopBatcher(score, executor=pool, max_delay=0.003, max_size=64,
                                                    inline_max=16, on_batch=lambda size, waited:
                                                    batches.append((size, waited)),
                                                    in_flight=lambda: gate["in_flight"])
        assert await asyncio.wait_for(closed_loop(b, gate, 30), timeout=60) == list(range(30))
        assert b._task is None  # never a drain: each call was scored in submit
        assert batches == [(1, False)] * 30 and b.waits == 0
        assert threads == {threading.current_thread().name}  # on the loop's thread
        # eight callers at once: all but the first find company in flight and queue
        gate["in_flight"] += 8
        try:
            got = await asyncio.wait_for(asyncio.gather(*(b.submit("m", i) for i in range(8))), timeout=60)
        finally:
            gate["in_flight"] -= 8
        assert got == list(range(8))
        assert b._task is not None and max(size for size, _ in batches[30:]) > 1

    asyncio.run(main())


def test_a_failure_scored_in_submit_reaches_its_caller_alone(pool: ThreadPoolExecutor) -> None:
    def score(k: str, qs: Sequence[int]) -> list[int]:
        raise ValueError("kernel failed")

    async def main() -> None:
        b: LoopBatcher[str, int, int] = LoopBatcher(score, executor=pool, max_delay=0.003, max_size=64,
                                                    inline_max=16, in_flight=lambda: 1)
        with pytest.raises(ValueError, match="kernel failed"):
            await b.submit("m", 1)
        assert b.batches == 0

    asyncio.run(main())
