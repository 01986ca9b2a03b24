"""The rules file on the shared two-phase rollout (supervisor/rollout.py over
supervisor/transaction.py, with rules_rollout.RulesKind), every interleaving without
processes: a bad file changes nothing; no worker serves a file before every worker staged
it; a worker that dies while preparing or committing ends on the new file; one rollout at
a time."""

from __future__ import annotations

import itertools
import pathlib
from collections.abc import Iterator

import pytest

from reco_sidecar.common.errors import ErrorKind
from reco_sidecar.ranking.rules import RulesFile
from reco_sidecar.runtime import payload as payloads
from reco_sidecar.runtime import wire as m
from reco_sidecar.runtime.supervisor import rollout as ro
from reco_sidecar.runtime.supervisor.rules_rollout import RulesReader, rules_rollout
from reco_sidecar.runtime.supervisor.transaction import Reply, Send

GOOD = 'hide = ["i1"]\n[[rules]]\nmodel = "demo"\n[rules.diversity]\ncap_field = "creator"\ncap = 2\n'
Rollout = ro.Rollout[RulesFile]


@pytest.fixture
def payload_dir() -> Iterator[payloads.PayloadDir]:
    d = payloads.PayloadDir()
    yield d
    d.close()


def make(tmp_path: pathlib.Path, payload_dir: payloads.PayloadDir, text: str = GOOD, pool: int = 2
         ) -> tuple[Rollout, RulesReader]:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    r = rules_rollout(pool, timeout=10.0)
    for slot in range(pool):
        assert r.booted(slot, 0) == []  # every worker serves the file it booted with
    return r, RulesReader(path, payload_dir)


def ask(r: Rollout, src: RulesReader, requester: tuple[int, int] | None = (0, 1), now: float = 0.0
        ) -> list[ro.Action]:
    return r.asked(requester, src.check(), now)


def messages(out: list[ro.Action]) -> list[m.ToWorker]:
    return [a.message for a in out if isinstance(a, Send)]


def test_every_worker_stages_the_file_before_any_serves_it(
        tmp_path: pathlib.Path, payload_dir: payloads.PayloadDir) -> None:
    r, src = make(tmp_path, payload_dir)
    out = ask(r, src)
    good = payload_dir.write(GOOD.encode())
    assert [(a.slot, a.message) for a in out if isinstance(a, Send)] == [
        (0, m.PrepareRules(1, good, "toml")), (1, m.PrepareRules(1, good, "toml"))]
    # Slot 0 staged it; slot 1 has not: nothing is committed, the pool still serves the old file.
    assert r.prepared(0, 1) == [] and r.generation == 0 and r.current is None
    out = r.prepared(1, 1)
    assert messages(out) == [m.CommitRules(1)] * 2
    assert r.generation == 1 and r.current is not None and r.current.content.hide == ("i1",)
    assert r.applied(0, 1) == []
    out = r.applied(1, 1)
    assert ro.Outcome(True, 1) in out
    assert Reply((0, 1), m.RulesDone(1, 1, 1, 2)) in out and not r.busy


def test_a_bad_file_is_refused_naming_the_field_before_any_worker_sees_it(
        tmp_path: pathlib.Path, payload_dir: payloads.PayloadDir) -> None:
    r, src = make(tmp_path, payload_dir, GOOD.replace("cap = 2", "cap = true"))
    out = ask(r, src, (1, 3))
    assert messages(out) == []
    (answer,) = [a for a in out if isinstance(a, Reply)]
    assert isinstance(answer.message, m.ReloadRefused)
    assert (answer.message.kind, answer.message.field) == (ErrorKind.FAILED_PRECONDITION, "rules[0].diversity.cap")
    assert "still serving the previous rules" in answer.message.message
    assert r.generation == 0 and r.current is None and not r.busy
    assert not src.changed(RulesFile.empty())  # --watch reports a bad file once, not at every poll


def test_a_worker_that_cannot_stage_it_aborts_everywhere_naming_the_field(
        tmp_path: pathlib.Path, payload_dir: payloads.PayloadDir) -> None:
    r, src = make(tmp_path, payload_dir)
    ask(r, src)
    r.prepared(0, 1)
    out = r.prepare_failed(1, 1, "the rules file sent cannot be read", "rules")
    assert messages(out) == [m.AbortRules(1)] * 2
    answer = next(a for a in out if isinstance(a, Reply))
    assert isinstance(answer.message, m.ReloadRefused)
    assert (answer.message.kind, answer.message.field) == (ErrorKind.FAILED_PRECONDITION, "rules")
    assert r.generation == 0 and r.current is None and not r.busy
    # A late answer to the aborted proposal commits nothing; the next one takes a new number.
    assert r.prepared(1, 1) == []
    ask(r, src)
    assert r.proposal is not None and r.proposal.generation == 2


def test_a_prepare_that_outlives_the_timeout_aborts_and_one_rollout_runs_at_a_time(
        tmp_path: pathlib.Path, payload_dir: payloads.PayloadDir) -> None:
    r, src = make(tmp_path, payload_dir)
    ask(r, src, (0, 1))
    second = next(a for a in ask(r, src, (1, 5)) if isinstance(a, Reply))
    assert isinstance(second.message, m.ReloadRefused) and second.message.kind is ErrorKind.UNAVAILABLE
    r.prepared(0, 1)
    assert r.tick(5.0) == []
    out = r.tick(11.0)
    assert messages(out) == [m.AbortRules(1)] * 2
    answer = next(a for a in out if isinstance(a, Reply))
    assert isinstance(answer.message, m.ReloadRefused) and "worker(s) 1" in answer.message.message
    assert not r.busy and r.generation == 0


def test_without_a_rules_file_reload_is_refused(payload_dir: payloads.PayloadDir) -> None:
    r = rules_rollout(1, timeout=1.0)
    out = r.asked((0, 1), RulesReader(None, payload_dir).check(), 0.0)
    answer = next(a for a in out if isinstance(a, Reply))
    assert isinstance(answer.message, m.ReloadRefused) and answer.message.field == "rules"
    assert messages(out) == []


# Events a worker of slot 1 can go through while a rollout runs: its death, its restart
# (booting the file the pool serves at that moment), and its answers.
def _drive(order: tuple[str, ...], tmp_path: pathlib.Path, payload_dir: payloads.PayloadDir
           ) -> tuple[Rollout, dict[int, int], list[dict[int, int]]]:
    """Runs the rollout through `order`, then lets every worker work; returns the rollout,
    which file generation each worker serves at the end, and what they served after each
    step taken before the rollout committed."""
    r, src = make(tmp_path, payload_dir)
    before_commit: list[dict[int, int]] = []
    inbox: dict[int, list[m.ToWorker]] = {0: [], 1: []}
    up = {0: True, 1: True}
    serving = {0: 0, 1: 0}
    staged: dict[int, int] = {}

    def deliver(out: list[ro.Action]) -> None:
        for a in out:
            if isinstance(a, Send) and up[a.slot]:
                inbox[a.slot].append(a.message)

    def work(slot: int) -> None:
        """The worker runs what it was sent, in order, and answers (worker/rules.py)."""
        while up[slot] and inbox[slot]:
            message = inbox[slot].pop(0)
            match message:
                case m.PrepareRules(generation):
                    staged[slot] = generation
                    deliver(r.prepared(slot, generation))
                case m.CommitRules(generation) if staged.get(slot) == generation:
                    serving[slot] = generation
                    deliver(r.applied(slot, generation))
                case m.SetRules(generation):
                    serving[slot] = generation
                    deliver(r.applied(slot, generation))
                case m.AbortRules():
                    staged.pop(slot, None)

    deliver(ask(r, src))
    for step in order:
        if step == "die":
            up[1], inbox[1] = False, []
            staged.pop(1, None)
            deliver(r.died(1))
        elif step == "boot" and not up[1]:
            up[1], serving[1] = True, r.generation  # forked with the pool's file of that moment
            deliver(r.booted(1, serving[1]))
        elif step == "work0":
            work(0)
        elif step == "work1":
            work(1)
        if r.current is None:
            before_commit.append(dict(serving))
    if not up[1]:  # the pool restarts a dead worker in the end
        up[1], serving[1] = True, r.generation
        deliver(r.booted(1, serving[1]))
    for _ in range(3):
        work(0)
        work(1)
    return r, serving, before_commit


@pytest.mark.parametrize("order", sorted(set(itertools.permutations(["die", "boot", "work0", "work1", "die"], 5))))
def test_every_death_and_boot_order_ends_with_every_worker_on_the_new_file(
        order: tuple[str, ...], tmp_path: pathlib.Path, payload_dir: payloads.PayloadDir) -> None:
    r, serving, before_commit = _drive(order, tmp_path, payload_dir)
    # until every live slot staged it, no worker serves the new file
    assert all(s == {0: 0, 1: 0} for s in before_commit)
    # and in the end every worker serves it, and the rollout is done
    assert not r.busy and r.generation == 1
    assert serving == {0: 1, 1: 1}


def test_the_requesters_trace_goes_with_every_message_of_its_rollout_and_no_other(
        tmp_path: pathlib.Path, payload_dir: payloads.PayloadDir) -> None:
    """A traced ReloadRules: its prepares, its commits and the replace of a worker that booted
    with the older file meanwhile all carry the call's traceparent, so every worker's part is
    a span of that trace; the next rollout, asked without one, carries none."""
    traced = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    r, src = make(tmp_path, payload_dir)
    sent = messages(r.asked((0, 1), src.check(), 0.0, traced))
    r.prepared(0, 1)
    sent += messages(r.prepared(1, 1))
    r.died(1)
    sent += messages(r.booted(1, 0))  # forked before the commit reached it: the file replaced
    assert [type(x) for x in sent] == [m.PrepareRules] * 2 + [m.CommitRules] * 2 + [m.SetRules]
    assert all(isinstance(x, m.PrepareRules | m.CommitRules | m.SetRules) and x.traceparent == traced for x in sent)
    r.applied(0, 1)
    r.applied(1, 1)
    assert not r.busy
    later = messages(ask(r, src))
    assert later and all(isinstance(x, m.PrepareRules) and x.traceparent == "" for x in later)
