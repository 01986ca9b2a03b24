"""The experiments rollout state machine (runtime/rollout.py), every interleaving without processes."""

from __future__ import annotations

import pathlib

from reco_sidecar.common.errors import ErrorKind
from reco_sidecar.runtime import wire as m
from reco_sidecar.runtime.supervisor import experiments_rollout as ro

GOOD = '[[experiments]]\nname = "e"\nsalt = "s"\nshare = 1.0\narms = [{ name = "a", model = "posts" }]\n'


def make(tmp_path: pathlib.Path, text: str = GOOD, pool: int = 2) -> tuple[ro.Rollout, pathlib.Path]:
    path = tmp_path / "experiments.toml"
    path.write_text(text)
    r = ro.Rollout(path, pool, timeout=10.0)
    for slot in range(pool):
        assert r.booted(slot, 0) == []
    return r, path


def ask(r: ro.Rollout, requester: tuple[int, int] | None = (0, 1), now: float = 0.0) -> list[ro.Action]:
    return r.asked(requester, ["posts"], lambda model: [1, 2], now)


def test_prepare_then_commit_then_the_answer(tmp_path: pathlib.Path) -> None:
    r, _ = make(tmp_path)
    out = ask(r)
    assert [a.slot for a in out if isinstance(a, ro.Send)] == [0, 1]
    assert all(isinstance(a, ro.Send) and isinstance(a.message, m.PrepareExperiments) for a in out)
    assert r.prepared(0, 1) == [] and r.generation == 0  # nothing serves it before every slot prepared
    out = r.prepared(1, 1)
    assert [a.message for a in out if isinstance(a, ro.Send)] == [m.CommitExperiments(1)] * 2
    assert r.generation == 1 and r.applied(0, 1) == []
    out = r.applied(1, 1)
    assert ro.Outcome(True, 1) in out
    assert ro.Answer((0, 1), m.ExperimentsDone(1, 1, 1, 2)) in out and not r.busy


def test_a_worker_that_dies_while_preparing_is_prepared_again_when_back(tmp_path: pathlib.Path) -> None:
    r, _ = make(tmp_path)
    ask(r)
    r.prepared(0, 1)
    assert r.died(1) == []
    out = r.booted(1, 0)  # restarted with the old file
    assert [a.message for a in out if isinstance(a, ro.Send)] == [m.PrepareExperiments(1, GOOD, "toml")]
    assert any(isinstance(a, ro.Send) and a.message == m.CommitExperiments(1) for a in r.prepared(1, 1))


def test_one_failed_prepare_aborts_everywhere_naming_the_field(tmp_path: pathlib.Path) -> None:
    r, _ = make(tmp_path)
    ask(r)
    r.prepared(0, 1)
    out = r.prepare_failed(1, 1, "version 7 cannot be served", "experiments[0].arms[0].version")
    assert [a.message for a in out if isinstance(a, ro.Send)] == [m.AbortExperiments(1)] * 2
    answer = next(a for a in out if isinstance(a, ro.Answer))
    assert isinstance(answer.message, m.ReloadRefused)
    assert (answer.message.kind, answer.message.field) == (ErrorKind.FAILED_PRECONDITION,
                                                          "experiments[0].arms[0].version")
    assert r.generation == 0 and r.current.text == "" and not r.busy
    # The next proposal takes a new number: a late answer to the aborted one is ignored.
    ask(r)
    assert r.proposal is not None and r.proposal.generation == 2 and r.prepared(0, 1) == []


def test_a_bad_file_is_refused_before_any_worker_sees_it(tmp_path: pathlib.Path) -> None:
    r, path = make(tmp_path)
    path.write_text(GOOD.replace("share = 1.0", "share = 2.0"))
    out = ask(r)
    assert not [a for a in out if isinstance(a, ro.Send)]
    answer = next(a for a in out if isinstance(a, ro.Answer))
    assert isinstance(answer.message, m.ReloadRefused) and answer.message.field == "experiments[0].share"
    assert not r.file_changed()  # --watch reports it once


def test_a_second_request_while_one_runs_is_unavailable_and_a_timeout_aborts(tmp_path: pathlib.Path) -> None:
    r, _ = make(tmp_path)
    ask(r, (0, 1))
    second = next(a for a in ask(r, (1, 5)) if isinstance(a, ro.Answer))
    assert isinstance(second.message, m.ReloadRefused) and second.message.kind is ErrorKind.UNAVAILABLE
    assert r.tick(5.0) == []
    out = r.tick(11.0)
    assert [a.message for a in out if isinstance(a, ro.Send)] == [m.AbortExperiments(1)] * 2
    assert not r.busy and r.generation == 0


def test_a_worker_forked_before_a_commit_is_brought_to_the_file(tmp_path: pathlib.Path) -> None:
    r, _ = make(tmp_path)
    ask(r, None)
    r.prepared(0, 1)
    r.prepared(1, 1)
    r.applied(0, 1)
    r.died(1)
    out = r.booted(1, 0)
    assert [a.message for a in out if isinstance(a, ro.Send)] == [m.SetExperiments(1, GOOD, "toml")]
    assert ro.Outcome(True, 1) in r.applied(1, 1)


def test_shutdown_answers_the_waiting_requester(tmp_path: pathlib.Path) -> None:
    r, _ = make(tmp_path)
    ask(r)
    answer = next(a for a in r.shutdown() if isinstance(a, ro.Answer))
    assert isinstance(answer.message, m.ReloadRefused) and answer.message.kind is ErrorKind.UNAVAILABLE
