"""The learner's files on their own: the journal (torn tails, compaction) and the table of
online vectors (what a reader sees while the writer writes, the bound on users)."""

from __future__ import annotations

import pathlib
import threading

import numpy as np
import pytest

from reco_sidecar.runtime.learner import journal
from reco_sidecar.runtime.learner.table import MAX_SEEN, MAX_SHOWN, WAYS, Slot, TableReader, TableWriter, retire_file
from reco_sidecar.serving.online import Event
from tests.support.models import online_copy


@pytest.fixture(scope="module")
def online_root(demo_root: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """demo, recording the event types `train` records: it accepts Feedback."""
    return online_copy(demo_root, tmp_path_factory.mktemp("online-models") / "root")


def _slot(vector: np.ndarray | None, seen: np.ndarray, known: bool, sums: tuple[list[int], list[float]] = ([], []),
          shown: tuple[list[int], list[int]] = ([], [])) -> Slot:
    return Slot(vector, seen, known, np.array(sums[0], np.int64), np.array(sums[1], np.float64),
                np.array(shown[0], np.int64), np.array(shown[1], np.int64))


def _events(n: int, start: int = 0) -> list[Event]:
    return [Event(f"e{i}", f"u{i % 7}", f"i{i}", "click", None if i % 2 else 0.5, 1000.0 + i)
            for i in range(start, start + n)]


def test_the_journal_gives_back_what_was_appended(tmp_path: pathlib.Path) -> None:
    j = journal.Journal(tmp_path / "journal", fsync=True)
    j.append(_events(10))
    j.append(_events(5, 10))
    j.close()
    again = journal.Journal(tmp_path / "journal", fsync=False)
    assert list(again.events()) == _events(15) and again.records == 15
    assert again.torn_bytes == 0


def test_a_torn_last_record_is_cut_off_and_appending_goes_on(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "journal"
    j = journal.Journal(path, fsync=True)
    j.append(_events(3))
    j.close()
    whole = path.stat().st_size
    with path.open("ab") as f:
        f.write(journal.encode(_events(1, 3)[0])[:-4])  # a write cut short by a crash
    again = journal.Journal(path, fsync=True)
    assert list(again.events()) == _events(3) and again.records == 3
    assert again.torn_bytes > 0 and path.stat().st_size == whole
    again.append(_events(1, 3))
    again.close()
    assert journal.read(path)[0] == _events(4)


def test_a_corrupt_record_ends_the_journal_there(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "journal"
    path.write_bytes(b"".join(journal.encode(e) for e in _events(3)))
    data = bytearray(path.read_bytes())
    data[len(journal.encode(_events(1)[0])) + 10] ^= 0xFF  # inside the second record
    path.write_bytes(bytes(data))
    assert journal.read(path)[0] == _events(1)


def test_compaction_keeps_the_newest_events(tmp_path: pathlib.Path) -> None:
    j = journal.Journal(tmp_path / "journal", fsync=False)
    j.append(_events(20))
    assert j.compact(8) == 12
    j.append(_events(1, 20))
    j.close()
    assert journal.read(tmp_path / "journal")[0] == _events(9, 12)


def test_a_reader_sees_what_the_writer_put(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "t.table"
    w = TableWriter(path, 3, 4, max_users=16)
    w.put("alice", _slot(np.array([1, 2, 3, 4], np.float32), np.array([5, 6]), True, ([5, 9], [0.7, 1.25]),
                         ([9, 11], [1, 3])))
    w.publish()
    r = TableReader(path)
    entry = r.lookup("alice")
    assert entry is not None and entry.known and entry.vector is not None
    assert entry.vector.tolist() == [1, 2, 3, 4] and entry.seen_rows.tolist() == [5, 6]
    assert entry.sum_rows.tolist() == [5, 9] and entry.sum_values.tolist() == [0.7, 1.25]  # float64, exact
    assert entry.shown_rows.tolist() == [9, 11] and entry.shown_counts.tolist() == [1, 3]
    assert r.lookup("bob") is None and r.version == 3
    w.put("alice", _slot(np.zeros(4, np.float32), np.arange(MAX_SEEN + 10), False))
    entry = r.lookup("alice")
    assert entry is not None and not entry.known
    assert entry.seen_rows.tolist() == list(range(10, MAX_SEEN + 10))  # the newest MAX_SEEN
    assert len(entry.shown_rows) == 0
    # Impressions alone: no vector (the trained one stands), at most MAX_SHOWN items, the newest.
    w.put("alice", _slot(None, np.zeros(0), True, shown=(list(range(MAX_SHOWN + 5)), [2] * (MAX_SHOWN + 5))))
    entry = r.lookup("alice")
    assert entry is not None and entry.vector is None
    assert entry.shown_rows.tolist() == list(range(5, MAX_SHOWN + 5))
    assert not r.retired
    w.retire()
    assert r.retired


def test_the_table_never_holds_more_users_than_its_slots(tmp_path: pathlib.Path) -> None:
    w = TableWriter(tmp_path / "t.table", 1, 2, max_users=2 * WAYS)
    evicted = [w.put(f"user-{i}", _slot(np.ones(2, np.float32), np.zeros(0), False)) for i in range(500)]
    w.publish()
    assert len(w) == 2 * WAYS
    assert sum(e is not None for e in evicted) == 500 - 2 * WAYS
    r = TableReader(tmp_path / "t.table")
    present = [u for u in (f"user-{i}" for i in range(500)) if r.lookup(u) is not None]
    assert sorted(present) == sorted(w.users())
    assert "user-499" in present  # the newest is never the one evicted


def test_a_reader_never_sees_half_a_write(tmp_path: pathlib.Path) -> None:
    """The writer fills vector and seen rows with one value per write; every read must find
    them all equal, whatever the interleaving."""
    path = tmp_path / "t.table"
    w = TableWriter(path, 1, 64, max_users=8)
    w.put("u", _slot(np.zeros(64, np.float32), np.zeros(MAX_SEEN, np.int64), True))
    w.publish()
    r = TableReader(path)
    stop = threading.Event()
    torn: list[tuple[float, int]] = []
    reads = [0]

    def read() -> None:
        while not stop.is_set():
            entry = r.lookup("u")
            if entry is None:
                continue
            reads[0] += 1
            assert entry.vector is not None
            values = set(entry.vector.tolist()) | {float(v) for v in entry.seen_rows.tolist()}
            if len(values) != 1:
                torn.append((float(entry.vector[0]), len(values)))

    reader = threading.Thread(target=read)
    reader.start()
    for v in range(1, 3000):
        w.put("u", _slot(np.full(64, v, np.float32), np.full(MAX_SEEN, v, np.int64), True))
    stop.set()
    reader.join()
    assert reads[0] > 0
    assert torn == []


def test_a_table_left_by_a_previous_learner_is_retired_for_its_readers(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "t.table"
    w = TableWriter(path, 1, 2, max_users=8)
    w.publish()
    r = TableReader(path)
    retire_file(path)
    assert r.retired and not path.exists()


def test_the_learner_solves_a_user_as_the_online_solve_does(online_root: pathlib.Path, tmp_path: pathlib.Path
                                                            ) -> None:
    """The learner's per-item sums give the vector online/solve.py gives the user's history."""
    from reco_sidecar.artifact import loader
    from reco_sidecar.online import solve
    from reco_sidecar.online.history import UserHistory
    from reco_sidecar.runtime.learner.state import VersionState

    model = loader.open_model(online_root / "demo" / "1")
    table = TableWriter(tmp_path / "t.table", 1, model.factors, max_users=64)
    state = VersionState(model, table)
    types = sorted(model.info.event_types)
    user, other = model.users.ids[3], model.users.ids[4]
    item_a, item_b = model.items.ids[10], model.items.ids[20]
    events = [Event("1", user, item_a, types[0], None, 1.0), Event("2", user, item_a, types[-1], 2.0, 2.0),
              Event("3", user, item_b, types[0], None, 3.0), Event("4", other, item_b, types[-1], None, 4.0)]
    state.publish(state.add(events))
    table.publish()
    expected = solve.recalculate(model, UserHistory(user).add(e for e in events if e.user_id == user))
    assert expected is not None
    entry = TableReader(tmp_path / "t.table").lookup(user)
    assert entry is not None and entry.known and entry.vector is not None
    np.testing.assert_allclose(entry.vector, expected.vector, rtol=1e-5, atol=1e-6)
    assert sorted(entry.seen_rows.tolist()) == sorted(expected.excluded.tolist())


def test_a_failed_append_takes_back_its_partial_record(tmp_path: pathlib.Path) -> None:
    """A disk that fills mid-write (here the file size limit: a short write, then EFBIG) must
    not leave half a record, which would end the journal there at the next start."""
    import resource
    import signal

    path = tmp_path / "journal"
    j = journal.Journal(path, fsync=False)
    j.append(_events(10))
    size = path.stat().st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 50, hard))
        with pytest.raises(OSError):
            j.append(_events(10, 10))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert path.stat().st_size == size
    j.append(_events(1, 20))
    j.close()
    assert journal.read(path)[0] == _events(10) + _events(1, 20)


def test_many_users_solved_together_equal_each_solved_alone(online_root: pathlib.Path) -> None:
    from reco_sidecar.artifact import loader
    from reco_sidecar.engine import foldin

    model = loader.open_model(online_root / "demo" / "1")
    rng = np.random.default_rng(4)
    histories = [(np.array([], dtype=np.int64), np.array([]))]
    for size in (1, 5, 30):
        rows = rng.choice(len(model.items.ids), size=size, replace=False)
        histories.append((np.sort(rows), rng.uniform(-1.0, 2.0, size=size)))
    together = foldin.solve_many(model.item_factors, model.yty, histories, model.info.objective)
    for (rows, values), vector in zip(histories, together, strict=True):
        alone = foldin.solve(model.item_factors, model.yty, rows, values, model.info.objective)
        np.testing.assert_array_equal(vector, alone)


def test_shown_events_count_per_item_reset_on_engagement_and_never_enter_the_solve(
        online_root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """The learner's side of the impressions rule: counts per (user, item) in the table, at most
    MAX_SHOWN items per user (the most recently shown), set back to 0 by an event of a positive
    type, and no part of the vector."""
    import dataclasses

    from reco_sidecar.artifact import loader
    from reco_sidecar.engine.eventtypes import EventType
    from reco_sidecar.runtime.learner.state import VersionState

    model = loader.open_model(online_root / "demo" / "1")
    types = {**model.info.event_types, "shown": EventType(0.0, False)}
    model = dataclasses.replace(model, info=dataclasses.replace(model.info, event_types=types))
    table = TableWriter(tmp_path / "t.table", 1, model.factors, max_users=64)
    state = VersionState(model, table)
    user, ids = model.users.ids[3], model.items.ids
    like = next(t for t, k in types.items() if k.weight > 0)

    def send(*events: tuple[str, str]) -> None:
        # (event ids are the journal's concern: the state counts what it is given)
        state.publish(state.add([Event(f"e{i}", user, item, kind, None, 5.0) for i, (kind, item) in enumerate(events)]))

    send(("shown", ids[1]), ("shown", ids[1]), ("shown", ids[2]))
    table.publish()
    entry = TableReader(tmp_path / "t.table").lookup(user)
    assert entry is not None and entry.vector is None and entry.known  # nothing to solve: trained vector
    assert dict(zip(entry.shown_rows.tolist(), entry.shown_counts.tolist(), strict=True)) == {1: 2, 2: 1}
    send((like, ids[1]))
    entry = TableReader(tmp_path / "t.table").lookup(user)
    assert entry is not None and entry.vector is not None
    assert dict(zip(entry.shown_rows.tolist(), entry.shown_counts.tolist(), strict=True)) == {2: 1}
    assert entry.sum_rows.tolist() == [1]  # the shown events took no part in the solve
    solved = entry.vector.tobytes()
    send(*[("shown", ids[10 + i]) for i in range(MAX_SHOWN + 3)])
    entry = TableReader(tmp_path / "t.table").lookup(user)
    assert entry is not None
    assert entry.shown_rows.tolist() == [10 + i for i in range(3, MAX_SHOWN + 3)]
    # shown events alone keep the slot's vector and sums (no solve)
    assert entry.vector is not None and entry.vector.tobytes() == solved and entry.sum_rows.tolist() == [1]


def test_users_put_together_leave_the_table_as_put_one_at_a_time(tmp_path: pathlib.Path) -> None:
    """A group's users are written by one put_many: the same slots, the same evictions (a
    user evicted by a later user of the same group included), the same contents."""
    rng = np.random.default_rng(7)
    users = [f"user-{i}" for i in range(300)] + [f"user-{i}" for i in range(0, 300, 7)]
    vectors = rng.standard_normal((len(users), 4)).astype(np.float32)
    seen = [np.arange(i % 5) + i for i in range(len(users))]
    known = [i % 3 == 0 for i in range(len(users))]
    one = TableWriter(tmp_path / "one.table", 1, 4, max_users=3 * WAYS)
    evicted_one = [e for i, u in enumerate(users)
                   if (e := one.put(u, _slot(vectors[i], seen[i], known[i]))) is not None]
    many = TableWriter(tmp_path / "many.table", 1, 4, max_users=3 * WAYS)
    evicted_many: list[str] = []
    for start in range(0, len(users), 64):
        part = slice(start, start + 64)
        evicted_many += many.put_many(users[part], vectors[part], seen[part], known[part])
    one.publish()
    many.publish()
    assert evicted_many == evicted_one and sorted(many.users()) == sorted(one.users())
    assert len(many) == 3 * WAYS
    a, b = TableReader(tmp_path / "one.table"), TableReader(tmp_path / "many.table")
    for u in dict.fromkeys(users):
        x, y = a.lookup(u), b.lookup(u)
        assert (x is None) == (y is None)
        if x is not None and y is not None:
            assert x.vector is not None and y.vector is not None
            assert x.vector.tolist() == y.vector.tolist() and x.seen_rows.tolist() == y.seen_rows.tolist()
            assert x.known == y.known


def test_a_reader_never_sees_half_of_a_group_write(tmp_path: pathlib.Path) -> None:
    """As above, with every write a put_many of several users sharing the reader's user."""
    path = tmp_path / "t.table"
    users = [f"u{i}" for i in range(6)]
    w = TableWriter(path, 1, 64, max_users=64)
    w.put_many(users, np.zeros((6, 64), np.float32), [np.zeros(MAX_SEEN, np.int64)] * 6, [True] * 6)
    w.publish()
    r = TableReader(path)
    stop = threading.Event()
    torn: list[int] = []
    reads = [0]

    def read() -> None:
        while not stop.is_set():
            for u in users:
                entry = r.lookup(u)
                if entry is None:
                    continue
                reads[0] += 1
                assert entry.vector is not None
                values = set(entry.vector.tolist()) | {float(v) for v in entry.seen_rows.tolist()}
                if len(values) != 1:
                    torn.append(len(values))

    reader = threading.Thread(target=read)
    reader.start()
    for v in range(1, 2000):
        w.put_many(users, np.full((6, 64), v, np.float32), [np.full(MAX_SEEN, v, np.int64)] * 6, [True] * 6)
    stop.set()
    reader.join()
    assert reads[0] > 0
    assert torn == []


def test_a_spark_objective_solves_many_users_as_each_alone(online_root: pathlib.Path) -> None:
    """Spark's regularization grows with each user's count of positive values: a batch of
    users must still use each user's own."""
    from reco_sidecar.artifact import loader
    from reco_sidecar.engine import foldin
    from reco_sidecar.engine.objective import SPARK, Objective

    model = loader.open_model(online_root / "demo" / "1")
    objective = Objective(form=SPARK, alpha=2.0, regularization=0.05)
    rng = np.random.default_rng(5)
    histories = []
    for size in (3, 3, 12, 0, 40):
        rows = rng.choice(len(model.items.ids), size=size, replace=False)
        histories.append((np.sort(rows), rng.uniform(-1.0, 2.0, size=size)))
    together = foldin.solve_many(model.item_factors, model.yty, histories, objective)
    for (rows, values), vector in zip(histories, together, strict=True):
        alone = foldin.solve(model.item_factors, model.yty, rows, values, objective)
        np.testing.assert_array_equal(vector, alone)


def test_a_users_vector_does_not_depend_on_the_group_it_was_solved_in(online_root: pathlib.Path,
                                                                      tmp_path: pathlib.Path) -> None:
    """The learner solves a group's users together; each one's vector is bit for bit the one
    it gets solved alone."""
    from reco_sidecar.artifact import loader
    from reco_sidecar.runtime.learner.state import VersionState

    model = loader.open_model(online_root / "demo" / "1")
    types = sorted(model.info.event_types)
    rng = np.random.default_rng(3)
    events = [Event(str(i), model.users.ids[int(rng.integers(0, 40))] if i % 5 else f"new-{i % 3}",
                    model.items.ids[int(rng.integers(0, 60))], types[i % len(types)], None, float(i))
              for i in range(200)]
    group = VersionState(model, TableWriter(tmp_path / "g.table", 1, model.factors, max_users=512))
    group.publish(group.add(events))
    group.table.publish()
    read = TableReader(tmp_path / "g.table")
    for n, user in enumerate(dict.fromkeys(e.user_id for e in events)):
        alone = VersionState(model, TableWriter(tmp_path / f"{n}.table", 1, model.factors, max_users=8))
        alone.publish(alone.add(e for e in events if e.user_id == user))
        alone.table.publish()
        x, y = read.lookup(user), TableReader(tmp_path / f"{n}.table").lookup(user)
        assert (x is None) == (y is None)
        if x is not None and y is not None:
            assert x.vector is not None and y.vector is not None
            assert x.vector.tobytes() == y.vector.tobytes() and x.seen_rows.tolist() == y.seen_rows.tolist()
            # the online sums the vector was solved from, for its reasons
            assert sorted(zip(x.sum_rows.tolist(), x.sum_values.tolist(), strict=True)) == sorted(
                zip(y.sum_rows.tolist(), y.sum_values.tolist(), strict=True))
