"""The file rollout state machine (supervisor/rollout.py, on the two-phase core of
supervisor/transaction.py) with the experiments file, every interleaving without processes."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from reco_sidecar.common.errors import ErrorKind
from reco_sidecar.experiments.checks import ExperimentsFile
from reco_sidecar.runtime import payload as payloads
from reco_sidecar.runtime import wire as m
from reco_sidecar.runtime.supervisor import rollout as ro
from reco_sidecar.runtime.supervisor.experiments_rollout import ExperimentsReader, experiments_rollout
from reco_sidecar.runtime.supervisor.transaction import Reply, Send

GOOD = '[[experiments]]\nname = "e"\nsalt = "s"\nshare = 1.0\narms = [{ name = "a", model = "posts" }]\n'
Rollout = ro.Rollout[ExperimentsFile]


@pytest.fixture
def payload_dir() -> Iterator[payloads.PayloadDir]:
    d = payloads.PayloadDir()
    yield d
    d.close()


def sent(text: str, d: payloads.PayloadDir) -> m.Payload:
    return d.write(text.encode())  # named by its digest: the same text is the same payload


def make(tmp_path: pathlib.Path, payload_dir: payloads.PayloadDir, text: str = GOOD, pool: int = 2
         ) -> tuple[Rollout, ExperimentsReader]:
    """The pure rollout, and the file it rolls out as the supervisor reads it."""
    path = tmp_path / "experiments.toml"
    path.write_text(text)
    r = experiments_rollout(pool, timeout=10.0)
    for slot in range(pool):
        assert r.booted(slot, 0) == []
    return r, ExperimentsReader(path, payload_dir)


def ask(r: Rollout, src: ExperimentsReader, requester: tuple[int, int] | None = (0, 1), now: float = 0.0
        ) -> list[ro.Action]:
    return r.asked(requester, src.check(["posts"], lambda model: [1, 2]), now)


def test_prepare_then_commit_then_the_answer(
        tmp_path: pathlib.Path, payload_dir: payloads.PayloadDir) -> None:
    r, src = make(tmp_path, payload_dir)
    out = ask(r, src)
    assert [a.slot for a in out if isinstance(a, Send)] == [0, 1]
    assert all(isinstance(a, Send) and isinstance(a.message, m.PrepareExperiments) for a in out)
    assert r.prepared(0, 1) == [] and r.generation == 0  # nothing serves it before every slot prepared
    out = r.prepared(1, 1)
    assert [a.message for a in out if isinstance(a, Send)] == [m.CommitExperiments(1)] * 2
    assert r.generation == 1 and r.applied(0, 1) == []
    out = r.applied(1, 1)
    assert ro.Outcome(True, 1) in out
    assert Reply((0, 1), m.ExperimentsDone(1, 1, 1, 2)) in out and not r.busy


def test_a_worker_that_dies_while_preparing_is_prepared_again_when_back(
        tmp_path: pathlib.Path, payload_dir: payloads.PayloadDir) -> None:
    r, src = make(tmp_path, payload_dir)
    ask(r, src)
    r.prepared(0, 1)
    assert r.died(1) == []
    out = r.booted(1, 0)  # restarted with the old file
    assert [a.message for a in out if isinstance(a, Send)] == [m.PrepareExperiments(1, sent(GOOD, payload_dir), "toml")]
    assert any(isinstance(a, Send) and a.message == m.CommitExperiments(1) for a in r.prepared(1, 1))


def test_one_failed_prepare_aborts_everywhere_naming_the_field(
        tmp_path: pathlib.Path, payload_dir: payloads.PayloadDir) -> None:
    r, src = make(tmp_path, payload_dir)
    ask(r, src)
    r.prepared(0, 1)
    out = r.prepare_failed(1, 1, "version 7 cannot be served", "experiments[0].arms[0].version")
    assert [a.message for a in out if isinstance(a, Send)] == [m.AbortExperiments(1)] * 2
    answer = next(a for a in out if isinstance(a, Reply))
    assert isinstance(answer.message, m.ReloadRefused)
    assert (answer.message.kind, answer.message.field) == (ErrorKind.FAILED_PRECONDITION,
                                                          "experiments[0].arms[0].version")
    assert r.generation == 0 and r.current is None and not r.busy
    # The next proposal takes a new number: a late answer to the aborted one is ignored.
    ask(r, src)
    assert r.proposal is not None and r.proposal.generation == 2 and r.prepared(0, 1) == []


def test_a_bad_file_is_refused_before_any_worker_sees_it(
        tmp_path: pathlib.Path, payload_dir: payloads.PayloadDir) -> None:
    r, src = make(tmp_path, payload_dir)
    path = src.path
    assert path is not None
    path.write_text(GOOD.replace("share = 1.0", "share = 2.0"))
    out = ask(r, src)
    assert not [a for a in out if isinstance(a, Send)]
    answer = next(a for a in out if isinstance(a, Reply))
    assert isinstance(answer.message, m.ReloadRefused) and answer.message.field == "experiments[0].share"
    assert not src.changed(ExperimentsFile.empty())  # --watch reports it once


def test_a_second_request_while_one_runs_is_unavailable_and_a_timeout_aborts(
        tmp_path: pathlib.Path, payload_dir: payloads.PayloadDir) -> None:
    r, src = make(tmp_path, payload_dir)
    ask(r, src, (0, 1))
    second = next(a for a in ask(r, src, (1, 5)) if isinstance(a, Reply))
    assert isinstance(second.message, m.ReloadRefused) and second.message.kind is ErrorKind.UNAVAILABLE
    assert r.tick(5.0) == []
    out = r.tick(11.0)
    assert [a.message for a in out if isinstance(a, Send)] == [m.AbortExperiments(1)] * 2
    assert not r.busy and r.generation == 0


def test_a_worker_forked_before_a_commit_is_brought_to_the_file(
        tmp_path: pathlib.Path, payload_dir: payloads.PayloadDir) -> None:
    r, src = make(tmp_path, payload_dir)
    ask(r, src, None)
    r.prepared(0, 1)
    r.prepared(1, 1)
    r.applied(0, 1)
    r.died(1)
    out = r.booted(1, 0)
    assert [a.message for a in out if isinstance(a, Send)] == [m.SetExperiments(1, sent(GOOD, payload_dir), "toml")]
    assert ro.Outcome(True, 1) in r.applied(1, 1)


def test_shutdown_answers_the_waiting_requester(
        tmp_path: pathlib.Path, payload_dir: payloads.PayloadDir) -> None:
    r, src = make(tmp_path, payload_dir)
    ask(r, src)
    answer = next(a for a in r.shutdown() if isinstance(a, Reply))
    assert isinstance(answer.message, m.ReloadRefused) and answer.message.kind is ErrorKind.UNAVAILABLE


def test_a_message_that_cannot_reach_a_worker_aborts_at_once(tmp_path: pathlib.Path,
                                                            payload_dir: payloads.PayloadDir) -> None:
    r, src = make(tmp_path, payload_dir)
    ask(r, src)
    out = r.undeliverable(1, "frame too large")
    assert [a.message for a in out if isinstance(a, Send)] == [m.AbortExperiments(1)] * 2
    answer = next(a for a in out if isinstance(a, Reply))
    assert isinstance(answer.message, m.ReloadRefused) and "frame too large" in answer.message.message
    assert not r.busy and r.generation == 0


def test_the_payload_a_worker_reads_is_checked(
        tmp_path: pathlib.Path, payload_dir: payloads.PayloadDir) -> None:
    good = sent(GOOD, payload_dir)
    assert payloads.read(good) == GOOD.encode()
    pathlib.Path(good.path).write_bytes(GOOD.replace("1.0", "0.5").encode())
    with pytest.raises(ValueError, match="is not the"):
        payloads.read(good)
    with pytest.raises(ValueError, match="cannot read"):
        payloads.read(m.Payload(str(tmp_path / "gone"), good.sha256, good.size))
