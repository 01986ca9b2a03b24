"""The worker pool's bookkeeping (runtime/supervisor/pool.py) without forking: restart
backoff, the boot-failure limit, heartbeats and their deadline. Forking and reaping real
workers is the process-tree tests' part (tests/test_supervisor.py)."""

from __future__ import annotations

import pathlib

from reco_sidecar.runtime.supervisor.pool import MAX_BACKOFF, MAX_BOOT_FAILURES, Pool
from reco_sidecar.settings import ServeSettings


def exit_status(code: int) -> int:
    return code << 8  # what waitpid reports for a process that exited with `code`


def pool(tmp_path: pathlib.Path, workers: int = 2, timeout: float = 10.0) -> Pool:
    settings = ServeSettings(model_root=tmp_path, workers=workers, worker_timeout=timeout)
    return Pool(settings, list(range(40000, 40000 + workers)), lambda: [])


def test_a_worker_that_served_restarts_at_once_one_that_never_booted_backs_off(tmp_path: pathlib.Path) -> None:
    p = pool(tmp_path)
    served, booting = p.slots
    served.pid, booting.pid = 101, 102
    p.ready(served, "127.0.0.1:1", now=0.0)
    done = p.exited(served, exit_status(1), now=10.0, restart=True)
    assert (done.code, done.was_ready, done.gave_up) == (1, True, False)
    assert served.restart_at == 10.0 and served.pid == 0 and not served.ready
    delays = []
    for attempt in range(MAX_BOOT_FAILURES):
        booting.pid = 200 + attempt
        done = p.exited(booting, exit_status(6), now=0.0, restart=True)
        assert booting.restart_at is not None
        delays.append(booting.restart_at)
    assert delays == sorted(delays) and max(delays) <= MAX_BACKOFF
    assert done.gave_up and booting.boot_failures == MAX_BOOT_FAILURES
    assert p.due_restarts(9.9) == [booting] and p.due_restarts(10.0) == [served, booting]


def test_stopping_restarts_nothing(tmp_path: pathlib.Path) -> None:
    p = pool(tmp_path, workers=1)
    p.slots[0].pid = 7
    p.exited(p.slots[0], exit_status(0), now=0.0, restart=False)
    assert p.due_restarts(1e9) == []


def test_heartbeats_count_activity_and_the_deadline_kills_once(tmp_path: pathlib.Path) -> None:
    p = pool(tmp_path, workers=1, timeout=10.0)
    slot = p.slots[0]
    slot.pid, slot.last_beat = 4242, 0.0
    assert p.beat(slot, calls=0, in_flight=0, now=1.0) is True  # the first count differs from "none yet"
    assert p.beat(slot, calls=0, in_flight=0, now=2.0) is False
    assert p.beat(slot, calls=3, in_flight=0, now=3.0) is True
    assert p.beat(slot, calls=3, in_flight=1, now=4.0) is True and p.busy()
    assert p.overdue(14.0) == [] and p.overdue(14.5) == [slot]
    slot.killed_for = "no heartbeat"  # what kill() records before it signals
    assert p.overdue(100.0) == []


def test_a_stalled_supervisor_forgives_every_deadline(tmp_path: pathlib.Path) -> None:
    p = pool(tmp_path, workers=2, timeout=10.0)
    for i, slot in enumerate(p.slots):
        slot.pid, slot.last_beat = 10 + i, 0.0
    assert p.overdue(30.0) == p.slots
    p.forgive(30.0)
    assert p.overdue(39.0) == []
