"""Feedback during a reload, through the real process tree: the learner solves the new
version's users on a thread of its own, so events sent meanwhile are accepted at once, and
each reaches the new version exactly once (docs/online.md, "Reload").

The journal is filled beforehand with enough events (written in the journal's own format,
as a previous run would have left them) that solving them against the new version takes a
second or more on the demo model; a caller sends one event at a time throughout the reload.
Before, the learner solved on its loop and answered no Feedback until the solve ended."""

from __future__ import annotations

import datetime
import pathlib
import random
import threading
import time

import pytest

from harness.procs import wait_until
from harness.versions import copy_version
from reco_sidecar.artifact import loader
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.online.events import Event
from reco_sidecar.runtime.learner import journal
from tests.support.models import online_copy
from tests.support.server import Sidecar, running_sidecar
from tests.test_online_process import _event, _items, _journaled, _once_online, _stubs

pytestmark = pytest.mark.slow

EARLIER_EVENTS = 30_000  # about 1.5 s of solving on the demo model


def _earlier_journal(online_dir: pathlib.Path, items: list[str]) -> None:
    rng = random.Random(7)
    at = time.time() - 600
    events = [Event(f"early-{i}", f"early-user-{i % (EARLIER_EVENTS // 4)}", items[rng.randrange(len(items))],
                    "like", None, at) for i in range(EARLIER_EVENTS)]
    j = journal.Journal(online_dir / "journal", fsync=False)
    j.append(events)
    j.close()


def _solved(sc: Sidecar, version: int) -> dict[str, object] | None:
    for e in sc.log_events():
        if e.get("event") == "online_version" and e.get("version") == version:
            return e
    return None


def test_feedback_is_accepted_while_the_learner_solves_a_reloaded_version(
        demo_root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    root = online_copy(demo_root, tmp_path / "root")
    items = list(loader.open_model(root / "demo" / "1").items.ids)
    online = tmp_path / "online"
    _earlier_journal(online, items)
    sent: list[tuple[str, str, float]] = []  # (user, item, when answered) of each event accepted
    failures: list[str] = []
    stop = threading.Event()
    with running_sidecar(root, "demo", workers=2, extra_args=["--online-dir", str(online)]) as sc:
        stubs = _stubs(sc)

        def caller() -> None:
            n = 0
            while not stop.is_set():
                user, item = f"during-{n}", items[n % len(items)]
                try:
                    answer = stubs[n % 2].Feedback(reco_pb2.FeedbackRequest(
                        events=[_event(f"during-{n}", user, item, "like", when=time.time())]), timeout=30)
                except Exception as e:
                    failures.append(repr(e))
                    return
                if answer.accepted != 1:
                    failures.append(f"{user}: accepted {answer.accepted}")
                sent.append((user, item, time.time()))
                n += 1
                time.sleep(0.005)

        thread = threading.Thread(target=caller, daemon=True)
        thread.start()
        try:
            version = copy_version(root / "demo", 1)
            assert sc.stub().Reload(reco_pb2.ReloadRequest(version=str(version)), timeout=120).new_version == version
            solved = wait_until(lambda: _solved(sc, version), 120, f"the learner to solve version {version}")
            time.sleep(0.2)  # a few events after the solve too
        finally:
            stop.set()
            thread.join(60)
        assert not failures, failures[:5]
        assert solved is not None
        # Feedback was answered while the new version was being solved (the log line is
        # written when the solve ends, with how long it took), and the learner counted them
        ended = datetime.datetime.fromisoformat(str(solved["timestamp"])).timestamp()
        began = ended - float(str(solved["seconds"]))
        answered = [at for _, _, at in sent if began < at < ended]
        assert len(answered) >= 2, (began, ended, [at for *_, at in sent][:5])
        assert int(str(solved["during_solve"])) >= len(answered) - 1, solved
        assert int(str(solved["events"])) >= EARLIER_EVENTS + int(str(solved["during_solve"])), solved
        # every event the caller had accepted, whether before the journal's cut or after it,
        # is in the new version on every worker: each user is answered from their event, and
        # the item they liked is not recommended back
        assert sent
        for stub in stubs:
            assert stub.GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=10).version == version
            for user, item, _ in sent:
                listed, source = _once_online(stub, user, len(items))
                assert source == reco_pb2.SOURCE_ONLINE_NEW_USER, user
                assert item not in listed, user
            listed, source = _items(stub, "early-user-1", len(items))
            assert source == reco_pb2.SOURCE_ONLINE_NEW_USER
    ids = _journaled(online)
    assert len(ids) == len(set(ids)) == EARLIER_EVENTS + len(sent)
