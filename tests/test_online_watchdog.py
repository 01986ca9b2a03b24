"""The learner's watchdog through the real process tree (docs/online.md, "When the learner
stops answering"): a learner that stops beating is killed and replaced, Feedback in flight
meanwhile is UNAVAILABLE (retry-safe by event id), and nothing accepted is lost or doubled."""

from __future__ import annotations

import os
import pathlib
import re
import signal

import grpc
import pytest

from harness.procs import wait_until
from reco_sidecar.gen.reco.v1 import reco_pb2, reco_pb2_grpc
from reco_sidecar.runtime.learner import journal
from tests.support.models import online_copy
from tests.support.server import Sidecar, running_sidecar
from tests.test_metrics import value, wait_for

pytestmark = pytest.mark.slow
TIMEOUT = 3.0  # --worker-timeout: the learner is held to the workers' deadline


def _event(event_id: str, user: str, item: str) -> reco_pb2.FeedbackEvent:
    return reco_pb2.FeedbackEvent(event_id=event_id, user_id=user, item_id=item, type="click")


def _worker_pids(sc: Sidecar) -> set[int] | None:
    try:
        return {sc.stub(a).GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=10).worker.pid
                for a in sc.worker_addresses}
    except grpc.RpcError:
        return None


def _learner_pid(sc: Sidecar) -> int | None:
    """The one live child of the supervisor that is not a serving worker."""
    serving = wait_until(lambda: _worker_pids(sc), 60, "both workers serving")
    others = [p for p in sc.worker_pids() if p not in serving]
    return others[0] if len(others) == 1 else None


def _stopped(pid: int) -> bool:
    # /proc/<pid>/stat: "pid (comm) STATE ..."; T is stopped by a signal.
    return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


def _feed_until_accepted(stub: reco_pb2_grpc.RecommenderStub, events: list[reco_pb2.FeedbackEvent]
                         ) -> reco_pb2.FeedbackResponse:
    def attempt() -> reco_pb2.FeedbackResponse | None:
        try:
            answer: reco_pb2.FeedbackResponse = stub.Feedback(reco_pb2.FeedbackRequest(events=events), timeout=30)
            return answer
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNAVAILABLE:
                return None
            raise
    return wait_until(attempt, 60, "Feedback accepted")


def test_a_stopped_learner_is_replaced_and_loses_nothing(demo_root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    from reco_sidecar.artifact import loader

    root = online_copy(demo_root, tmp_path / "root")
    model = loader.open_model(root / "demo" / "1")
    users = [model.users.ids[r] for r in range(4)] + ["fresh-1"]
    items = list(model.items.ids)
    before = [_event(f"b-{u}-{k}", user, items[(u * 41 + k * 13) % len(items)])
              for u, user in enumerate(users) for k in range(6)]
    during = _event("d-0", users[0], items[(7 * 13 + 3) % len(items)])
    args = ["--online-dir", str(tmp_path / "online"), "--worker-timeout", str(TIMEOUT), "--metrics-port", "0"]
    with running_sidecar(root, "demo", workers=2, extra_args=args) as sc:
        stubs = [sc.stub(a) for a in sc.worker_addresses]
        # Through both workers: each then holds its connection to this learner.
        for i, stub in enumerate(stubs):
            half = before[i::2]
            assert stub.Feedback(reco_pb2.FeedbackRequest(events=half), timeout=30).accepted == len(half)
        old = wait_until(lambda: _learner_pid(sc), 60, "the learner running")
        os.kill(old, signal.SIGSTOP)
        wait_until(lambda: _stopped(old), 30, "the learner stopped")

        # In flight while it is stopped: UNAVAILABLE once the supervisor kills it, never a hang.
        with pytest.raises(grpc.RpcError) as refused:
            stubs[0].Feedback(reco_pb2.FeedbackRequest(events=[during]), timeout=60)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "retry" in (refused.value.details() or "")

        wait_until(lambda: (p := _learner_pid(sc)) is not None and p != old, 60, "a new learner")
        assert old not in sc.tree_pids()
        timeouts = [e for e in sc.log_events() if e.get("event") == "online_learner_timeout"]
        assert [e["learner_pid"] for e in timeouts] == [old]
        # The loop checks at least every TIMEOUT / 2 or forgives (it was stalled itself): a kill
        # comes at most 1.5 x --worker-timeout after the last beat (docs/online.md).
        said = re.match(r"no heartbeat for ([0-9.]+) s", timeouts[0]["reason"])
        assert said is not None
        waited = float(said.group(1))
        assert TIMEOUT <= waited <= 1.5 * TIMEOUT  # the reason rounds to 0.1 s
        exits = [e for e in sc.log_events() if e.get("event") == "online_learner_exit"]
        assert exits and exits[-1]["killed_for"] == timeouts[0]["reason"]
        counted = wait_for(sc, lambda s: value(s, "reco_learner_exits_total") == 1)
        assert value(counted, "reco_learner_timeouts_total") == 1
        assert value(counted, "reco_worker_exits_total") == 0  # the learner is not a worker

        # The refused event never reached the stopped learner: a retry is its first acceptance.
        assert _feed_until_accepted(stubs[0], [during]).accepted == 1
        assert _feed_until_accepted(stubs[1], [during]).duplicates == 1
        # Every event accepted before the stop is applied on every worker, once.
        for user in users:
            mine = {e.item_id for e in [*before, during] if e.user_id == user}
            for stub in stubs:
                r = stub.Recommend(reco_pb2.RecommendRequest(user_id=user, n=len(items), omit_jsonld=True),
                                   timeout=10)
                assert r.source in (reco_pb2.SOURCE_ONLINE, reco_pb2.SOURCE_ONLINE_NEW_USER)
                assert not mine & {i.item_id for i in r.items}, f"{user}: an accepted event is not applied"
        again = _feed_until_accepted(stubs[1], before)
        assert (again.accepted, again.duplicates) == (0, len(before))
    events, _ = journal.read(tmp_path / "online" / "journal")
    ids = [e.event_id for e in events]
    assert sorted(ids) == sorted(e.event_id for e in [*before, during])  # each once
