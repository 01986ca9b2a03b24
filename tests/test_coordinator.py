"""The reload transaction, event by event, for every interleaving of worker restarts, deaths,
slow prepares, timeouts, queued reloads and shutdown. The coordinator is pure: these tests
play the supervisor (feeding events) and the workers (fake channels that record what each
was sent), and check the one invariant that matters: a Reload that answers OK has every
slot serving the new version; one that fails leaves no slot on it."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TypeVar

from reco_sidecar.artifact.version_choice import Chosen, NoVersion
from reco_sidecar.common.errors import ErrorKind
from reco_sidecar.common.versions import LATEST, VersionSpec
from reco_sidecar.runtime import wire as m
from reco_sidecar.runtime.supervisor import model_reload as co
from reco_sidecar.runtime.supervisor.transaction import Reply, Send

T = TypeVar("T")


@dataclass
class FakeWorker:
    """What one slot's channel carried, and the version that worker serves."""

    version: int | None = None
    prepared: set[int] = field(default_factory=set)
    inbox: list[m.ToWorker] = field(default_factory=list)
    answered: set[int] = field(default_factory=set)


class Harness:
    def __init__(self, pool: int = 2, serving: int = 1, timeout: float = 10.0) -> None:
        self.c = co.Coordinator(pool, serving, timeout=timeout)
        self.now = 0.0
        self.workers = {s: FakeWorker() for s in range(pool)}
        self.replies: list[Reply] = []
        self.verifies: list[co.StartVerify] = []
        self.killed: list[int] = []
        self.finished: list[co.Finished] = []
        for slot in range(pool):
            self.boot(slot, serving)

    def feed(self, event: co.Event) -> list[co.Action]:
        actions = self.c.handle(event, self.now)
        for a in actions:
            match a:
                case Send(slot, message):
                    self.workers[slot].inbox.append(message)
                case Reply():
                    self.replies.append(a)
                case co.StartVerify():
                    self.verifies.append(a)
                case co.Kill(slot, _):
                    self.killed.append(slot)
                case co.Finished():
                    self.finished.append(a)
        return actions

    # the supervisor's side
    def ask(self, spec: VersionSpec, request_id: int = 1, slot: int = 0) -> None:
        self.feed(co.ReloadAsked((slot, request_id), spec))

    def verified(self, version: int, bad: tuple[tuple[int, str], ...] = ()) -> None:
        self.feed(co.VersionVerified(self.verifies[-1].ticket, Chosen(version, bad)))

    def boot(self, slot: int, version: int) -> None:
        self.workers[slot] = FakeWorker(version)
        self.feed(co.WorkerBooted(slot, version))

    def die(self, slot: int, cause: co.Death = co.Death.EXITED) -> None:
        self.workers[slot] = FakeWorker()
        self.feed(co.WorkerDied(slot, cause))

    # the workers' side: carry out the last message of a kind, answer it
    def last(self, slot: int, kind: type[T]) -> T:
        return [x for x in self.workers[slot].inbox if isinstance(x, kind)][-1]

    def prepared(self, slot: int) -> None:
        msg = self.last(slot, m.Prepare)
        self.workers[slot].prepared.add(msg.version)
        self.feed(co.WorkerAnswered(slot, m.Prepared(msg.txn, msg.version, 0.5)))

    def prepare_failed(self, slot: int) -> None:
        msg = self.last(slot, m.Prepare)
        self.feed(co.WorkerAnswered(slot, m.PrepareFailed(msg.txn, msg.version, "bad file")))

    def committed(self, slot: int, kind: type[m.Commit] | type[m.Switch] = m.Commit) -> None:
        msg: m.Commit | m.Switch = self.last(slot, kind)
        if kind is m.Commit and msg.version not in self.workers[slot].prepared:
            self.feed(co.WorkerAnswered(slot, m.CommitFailed(msg.txn, msg.version, "not prepared")))
            return
        self.workers[slot].version = msg.version
        self.feed(co.WorkerAnswered(slot, m.Committed(msg.txn, msg.version)))

    def reply(self) -> m.ReloadDone | m.ReloadRefused:
        assert len(self.replies) == 1, self.replies
        message = self.replies[0].message
        assert isinstance(message, m.ReloadDone | m.ReloadRefused)
        return message

    def serving(self) -> dict[int, int | None]:
        return {s: w.version for s, w in self.workers.items()}


def test_reload_prepares_everywhere_then_commits_then_answers() -> None:
    h = Harness()
    h.ask(2)
    assert h.verifies[-1].spec == 2
    h.verified(2)
    assert all(isinstance(h.last(s, m.Prepare), m.Prepare) for s in (0, 1))
    h.prepared(0)
    assert not any(isinstance(x, m.Commit) for w in h.workers.values() for x in w.inbox), "commit before all prepared"
    h.prepared(1)
    assert h.c.serving == 2
    h.committed(0)
    assert h.replies == []
    h.committed(1)
    assert h.reply() == m.ReloadDone(1, 1, 2, 0.5, 2)
    assert h.serving() == {0: 2, 1: 2}


def test_same_version_everywhere_is_answered_at_once() -> None:
    h = Harness()
    h.ask(LATEST)
    h.verified(1)
    assert h.reply() == m.ReloadDone(1, 1, 1, 0.0, 2)
    assert h.finished[-1].noop


def test_a_worker_restarting_mid_prepare_is_prepared_when_it_boots() -> None:
    h = Harness()
    h.ask(2)
    h.verified(2)
    h.prepared(0)
    h.die(1)  # killed before it answered; the pool restarts it with the serving version
    h.boot(1, 1)
    assert isinstance(h.last(1, m.Prepare), m.Prepare)
    h.prepared(1)
    h.committed(0)
    h.committed(1)
    assert h.reply() == m.ReloadDone(1, 1, 2, 0.5, 2)
    assert h.serving() == {0: 2, 1: 2}


def test_a_worker_booting_when_the_reload_starts_is_waited_for() -> None:
    """The reported race: kill -9 one worker, then Reload through the other."""
    h = Harness()
    h.die(1)
    h.ask(2)
    h.verified(2)
    h.prepared(0)
    assert not any(isinstance(x, m.Commit) for x in h.workers[0].inbox), "committed without slot 1"
    h.boot(1, 1)
    h.prepared(1)
    h.committed(0)
    h.committed(1)
    assert h.reply() == m.ReloadDone(1, 1, 2, 0.5, 2)
    assert h.serving() == {0: 2, 1: 2}


def test_a_worker_dying_twice_mid_prepare_aborts_and_nothing_switches() -> None:
    h = Harness()
    h.ask(2)
    h.verified(2)
    h.die(1)
    h.boot(1, 1)
    h.die(1)
    r = h.reply()
    assert isinstance(r, m.ReloadRefused) and r.kind is ErrorKind.FAILED_PRECONDITION
    assert "worker 1 exited" in r.message and "still serving 1" in r.message
    assert isinstance(h.last(0, m.Abort), m.Abort)
    assert h.c.serving == 1 and 2 in h.c.failed
    h.boot(1, 1)
    assert h.workers[1].inbox == [] or not any(isinstance(x, m.Prepare | m.Switch) for x in h.workers[1].inbox)
    assert h.serving() == {0: 1, 1: 1}


def test_a_hung_worker_killed_mid_prepare_fails_the_reload_at_once_naming_it() -> None:
    h = Harness()
    h.ask(2)
    h.verified(2)
    h.prepared(0)
    h.die(1, co.Death.TIMED_OUT)
    r = h.reply()
    assert isinstance(r, m.ReloadRefused) and "worker 1 timed out" in r.message
    assert h.c.serving == 1


def test_a_failed_prepare_aborts_and_a_slow_prepare_of_it_is_dropped() -> None:
    """Abort racing a slow prepare: slot 1 is still loading when slot 0 fails."""
    h = Harness()
    h.ask(2)
    h.verified(2)
    slow = h.last(1, m.Prepare)
    h.prepare_failed(0)
    abort = h.last(1, m.Abort)
    assert (abort.txn, abort.version) == (slow.txn, slow.version), "the slow worker learns which txn is aborted"
    assert isinstance(h.reply(), m.ReloadRefused)
    # Its late answer changes nothing: no commit is ever sent for the aborted txn.
    h.prepared(1)
    assert not any(isinstance(x, m.Commit | m.Switch) for w in h.workers.values() for x in w.inbox)
    assert h.c.txn is None and h.c.serving == 1


def test_a_queued_reload_runs_after_the_running_one() -> None:
    h = Harness()
    h.ask(2, request_id=1)
    h.ask(3, request_id=2)
    assert len(h.verifies) == 1, "second verification before the first reload finished"
    h.verified(2)
    for s in (0, 1):
        h.prepared(s)
    for s in (0, 1):
        h.committed(s)
    assert len(h.verifies) == 2 and h.verifies[-1].spec == 3
    h.verified(3)
    for s in (0, 1):
        h.prepared(s)
    for s in (0, 1):
        h.committed(s)
    assert [r.message for r in h.replies] == [m.ReloadDone(1, 1, 2, 0.5, 2), m.ReloadDone(2, 2, 3, 0.5, 2)]


def test_a_refused_version_is_answered_and_skipped_by_latest_afterwards() -> None:
    h = Harness()
    h.ask(LATEST)
    h.feed(co.VersionVerified(h.verifies[-1].ticket, NoVersion(ErrorKind.FAILED_PRECONDITION, "bad", "version",
                                                             ((3, "TypeError: odd"),))))
    r = h.reply()
    assert isinstance(r, m.ReloadRefused) and r.kind is ErrorKind.FAILED_PRECONDITION and r.field == "version"
    h.ask(LATEST, request_id=2)
    assert h.verifies[-1].known_bad == frozenset({3})


def test_prepare_timeout_aborts_as_unavailable_naming_the_worker() -> None:
    h = Harness(timeout=5.0)
    h.ask(2)
    h.verified(2)
    h.prepared(0)
    h.now = 4.0
    h.feed(co.Tick())
    assert h.replies == []
    h.now = 6.0
    h.feed(co.Tick())
    r = h.reply()
    assert isinstance(r, m.ReloadRefused) and r.kind is ErrorKind.UNAVAILABLE and "worker(s) 1" in r.message
    assert isinstance(h.last(0, m.Abort), m.Abort) and h.c.serving == 1
    assert 2 not in h.c.failed, "a timeout says nothing about the version"


def test_a_verification_that_never_ends_is_stopped_at_the_timeout() -> None:
    h = Harness(timeout=5.0)
    h.ask(2, request_id=1)
    h.ask(3, request_id=2)
    h.now = 6.0
    actions = h.feed(co.Tick())
    assert any(isinstance(a, co.StopVerify) for a in actions)
    r = h.reply()
    assert isinstance(r, m.ReloadRefused) and r.kind is ErrorKind.UNAVAILABLE and r.id == 1
    assert h.verifies[-1].spec == 3, "the queued reload goes on"


def test_commit_timeout_replaces_the_silent_worker_and_fails() -> None:
    h = Harness(timeout=5.0)
    h.ask(2)
    h.verified(2)
    h.prepared(0)
    h.prepared(1)
    h.committed(0)
    h.now = 6.0
    h.feed(co.Tick())
    r = h.reply()
    assert isinstance(r, m.ReloadRefused) and r.kind is ErrorKind.UNAVAILABLE
    assert h.killed == [1] and h.c.serving == 2


def test_shutdown_during_a_reload_answers_everyone_unavailable() -> None:
    h = Harness()
    h.ask(2, request_id=1)
    h.ask(3, request_id=2)
    h.verified(2)
    h.prepared(0)
    h.feed(co.ShutdownBegan())
    assert sorted((r.message.id, r.message.kind) for r in h.replies if isinstance(r.message, m.ReloadRefused)) \
        == [(1, ErrorKind.UNAVAILABLE), (2, ErrorKind.UNAVAILABLE)]
    h.prepared(1)
    h.ask(4, request_id=3)
    assert not any(isinstance(x, m.Commit) for w in h.workers.values() for x in w.inbox)
    assert h.replies[-1].message.id == 3 and isinstance(h.replies[-1].message, m.ReloadRefused)


def test_shutdown_during_verification() -> None:
    h = Harness()
    h.ask(2)
    h.feed(co.ShutdownBegan())
    assert isinstance(h.reply(), m.ReloadRefused)
    h.verified(2)
    assert len(h.replies) == 1 and h.c.txn is None


# -- commit-phase interleavings ------------------------------------------------------------------


def test_a_worker_dying_mid_commit_is_waited_for_and_boots_the_new_version() -> None:
    h = Harness()
    h.ask(2)
    h.verified(2)
    h.prepared(0)
    h.prepared(1)
    h.committed(0)
    h.die(1)
    assert h.replies == []
    h.boot(1, h.c.serving)  # the pool boots c.serving
    assert h.reply() == m.ReloadDone(1, 1, 2, 0.5, 2)
    assert h.serving() == {0: 2, 1: 2}


def test_a_confirmed_worker_dying_before_the_end_is_waited_for_again() -> None:
    h = Harness()
    h.ask(2)
    h.verified(2)
    h.prepared(0)
    h.prepared(1)
    h.committed(0)
    h.die(0)
    h.committed(1)
    assert h.replies == [], "answered while slot 0 was down"
    h.boot(0, h.c.serving)
    assert h.reply() == m.ReloadDone(1, 1, 2, 0.5, 2)


def test_a_worker_that_booted_the_old_version_during_the_commit_is_switched() -> None:
    """Issue 17 #10: it was restarting during prepare, and became ready only after commit began."""
    h = Harness()
    h.ask(2)
    h.verified(2)
    h.prepared(0)
    h.die(1)
    h.boot(1, 1)
    h.prepared(1)
    h.committed(0)
    h.die(1)
    h.boot(1, 1)  # e.g. forked just before the commit began, so it booted version 1
    assert isinstance(h.last(1, m.Switch), m.Switch)
    assert h.replies == []
    h.committed(1, m.Switch)
    assert h.reply() == m.ReloadDone(1, 1, 2, 0.5, 2)
    assert h.serving() == {0: 2, 1: 2}


def test_a_commit_refusal_replaces_the_worker_instead_of_counting_it() -> None:
    """The old bug: the refusal came back typed 'prepared' and the reply said OK with workers=1."""
    h = Harness()
    h.ask(2)
    h.verified(2)
    h.prepared(0)
    h.prepared(1)
    h.workers[1].prepared.clear()  # it lost what it prepared
    h.committed(0)
    h.committed(1)  # answers CommitFailed
    assert h.killed == [1] and h.replies == []
    h.die(1)
    h.boot(1, h.c.serving)
    assert h.reply() == m.ReloadDone(1, 1, 2, 0.5, 2)


def test_a_worker_booting_an_old_version_outside_a_reload_is_switched() -> None:
    h = Harness()
    h.boot(1, 7)
    switch = h.last(1, m.Switch)
    assert switch == m.Switch(co.REPAIR, 1)
    h.feed(co.WorkerAnswered(1, m.CommitFailed(co.REPAIR, 1, "cannot")))
    assert h.killed == [1]


def test_every_death_and_boot_order_ends_all_on_the_answered_version() -> None:
    """Exhaustive over short schedules of worker events: once everything settles, an OK answer
    means every slot serves the new version and `workers` is the pool size; a refusal means
    no slot does and the serving version is unchanged."""
    steps = ["answer0", "answer1", "die0", "die1", "boot0", "boot1", "fail0"]
    outcomes = {"ok": 0, "refused": 0}
    for schedule in itertools.product(steps, repeat=5):
        h = Harness()
        h.ask(2)
        h.verified(2)
        for step in schedule:
            _step(h, step)
        _settle(h)
        r = h.reply()
        if isinstance(r, m.ReloadDone):
            outcomes["ok"] += 1
            assert h.serving() == {0: 2, 1: 2} and r.workers == 2 and h.c.serving == 2, schedule
        else:
            outcomes["refused"] += 1
            assert h.serving() == {0: 1, 1: 1} and h.c.serving == 1, schedule
    assert outcomes["ok"] and outcomes["refused"]


def _step(h: Harness, step: str) -> None:
    slot = int(step[-1])
    alive = h.workers[slot].version is not None
    if step.startswith("die") and alive:
        h.die(slot)
    elif step.startswith("boot") and not alive:
        h.boot(slot, h.c.serving)
    elif step.startswith("answer") and alive:
        _respond(h, slot, fail=False)
    elif step.startswith("fail") and alive:
        _respond(h, slot, fail=True)


def _respond(h: Harness, slot: int, *, fail: bool) -> bool:
    """The worker answers its oldest unanswered Prepare/Commit/Switch as a real one would;
    work for a transaction it was told to abort is dropped without an answer."""
    w = h.workers[slot]
    aborted = {x.txn for x in w.inbox if isinstance(x, m.Abort)}
    for i, msg in enumerate(w.inbox):
        if i in w.answered or not isinstance(msg, m.Prepare | m.Commit | m.Switch):
            continue
        w.answered.add(i)
        if msg.txn in aborted:
            continue
        answer: m.Prepared | m.PrepareFailed | m.Committed | m.CommitFailed
        if isinstance(msg, m.Prepare):
            if fail:
                answer = m.PrepareFailed(msg.txn, msg.version, "bad file")
            else:
                w.prepared.add(msg.version)
                answer = m.Prepared(msg.txn, msg.version, 0.5)
        elif isinstance(msg, m.Switch) or msg.version in w.prepared:
            w.version = msg.version
            answer = m.Committed(msg.txn, msg.version)
        else:
            answer = m.CommitFailed(msg.txn, msg.version, "not prepared")
        h.feed(co.WorkerAnswered(slot, answer))
        return True
    return False


def _settle(h: Harness) -> None:
    """Everything left happens: killed workers die, dead ones boot, live ones answer."""
    for _ in range(50):
        progressed = False
        while h.killed:
            h.die(h.killed.pop())
            progressed = True
        for slot, w in h.workers.items():
            if w.version is None:
                h.boot(slot, h.c.serving)
                progressed = True
            elif _respond(h, slot, fail=False):
                progressed = True
        if not progressed:
            return
    raise AssertionError("the transaction never settled")


def test_a_reload_to_a_number_pins_it_until_a_reload_of_latest() -> None:
    h = Harness(serving=2)
    h.boot(0, 2)
    h.boot(1, 2)
    h.ask(1)  # the operator's rollback
    h.verified(1)
    h.prepared(0)
    h.prepared(1)
    h.committed(0)
    h.committed(1)
    assert isinstance(h.reply(), m.ReloadDone) and h.c.pinned == 1
    h.ask(3, request_id=2)  # a failed Reload changes nothing
    h.feed(co.VersionVerified(h.verifies[-1].ticket, NoVersion(ErrorKind.FAILED_PRECONDITION, "bad", "version")))
    assert h.c.pinned == 1
    h.ask(LATEST, request_id=3)
    h.verified(1)
    assert h.c.pinned is None
    h.ask(1, request_id=4)  # to the version already served: still the operator's choice
    h.verified(1)
    assert h.c.pinned == 1
    h.feed(co.ReloadAsked(None, 1, pin=False))  # a model store asking by number on its own
    h.verified(1)
    assert h.c.pinned is None


def test_a_message_that_cannot_reach_a_worker_fails_the_reload_at_once() -> None:
    h = Harness()
    h.ask(2)
    h.verified(2)
    h.prepared(0)
    h.feed(co.Undeliverable(1, "prepare message of 200000 bytes is larger than 131072"))
    reply = h.reply()
    assert isinstance(reply, m.ReloadRefused) and reply.kind is ErrorKind.UNAVAILABLE
    assert "worker 1" in reply.message and "larger than" in reply.message
    assert isinstance(h.last(0, m.Abort), m.Abort) and h.c.txn is None and h.c.serving == 1
    # Not the version's fault: it is not marked bad, a later reload may try it again.
    assert 2 not in h.c.failed


def test_the_requesters_trace_goes_with_every_message_of_its_transaction_and_no_other() -> None:
    """Each worker's part in a traced Reload joins the Reload's trace: the traceparent the
    requesting worker sent is on every Prepare, Commit and Switch of that transaction; the
    next reload, asked without one, carries none."""
    traced = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    h = Harness()
    h.feed(co.ReloadAsked((0, 1), 2, traceparent=traced))
    h.feed(co.ReloadAsked(None, 3))  # queued behind it: the watch's, untraced
    h.verified(2)
    h.prepared(0)
    h.die(1)
    h.boot(1, 1)  # prepared again once it is back
    h.prepared(1)
    h.committed(0)
    h.die(1)
    h.boot(1, 1)  # booted the old version during the commit: switched
    h.committed(1, m.Switch)
    assert h.reply() == m.ReloadDone(1, 1, 2, 0.5, 2)
    sent = [x for w in h.workers.values() for x in w.inbox if isinstance(x, m.Prepare | m.Commit | m.Switch)]
    assert {type(x) for x in sent} == {m.Prepare, m.Commit, m.Switch}
    assert all(x.traceparent == traced for x in sent)
    h.verified(3)
    assert h.last(0, m.Prepare).version == 3 and h.last(0, m.Prepare).traceparent == ""
