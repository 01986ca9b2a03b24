"""Online learning through the real process tree (docs/online.md): Feedback's events reach
the one learner, its journal and the table every worker reads."""

from __future__ import annotations

import os
import pathlib
import signal
import time
from collections.abc import Iterator

import grpc
import pytest

from harness.procs import wait_until
from reco_sidecar.gen.reco.v1 import reco_pb2, reco_pb2_grpc
from reco_sidecar.runtime.learner import journal
from reco_sidecar.runtime.learner.process import NICENESS
from tests.support.learner import learner_pid
from tests.support.models import online_copy
from tests.support.server import Sidecar, running_sidecar

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def online_root(demo_root: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """demo, recording the event types `train` records: it accepts Feedback."""
    return online_copy(demo_root, tmp_path_factory.mktemp("online-models") / "root")


def _event(event_id: str, user: str, item: str, kind: str = "like", when: float = 0.0,
           weight: float = 0.0) -> reco_pb2.FeedbackEvent:
    return reco_pb2.FeedbackEvent(event_id=event_id, user_id=user, item_id=item, type=kind, time=when,
                                  weight=weight)


def _items(stub: reco_pb2_grpc.RecommenderStub, user: str, n: int = 10) -> tuple[list[str], int]:
    r = stub.Recommend(reco_pb2.RecommendRequest(user_id=user, n=n, omit_jsonld=True), timeout=10)
    return [i.item_id for i in r.items], r.source


def _stubs(sc: Sidecar) -> list[reco_pb2_grpc.RecommenderStub]:
    """One channel per worker address: each stub reaches one worker, known by its pid."""
    stubs = [sc.stub(address) for address in sc.worker_addresses]
    pids = {s.GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=10).worker.pid for s in stubs}
    assert len(pids) == len(stubs)
    return stubs


def _online(tmp_path: pathlib.Path) -> list[str]:
    return ["--online-dir", str(tmp_path / "online")]


@pytest.fixture
def a_user(online_root: pathlib.Path) -> Iterator[tuple[str, list[str]]]:
    """A trained user and items they have not seen, far down their list."""
    from reco_sidecar.artifact import loader

    model = loader.open_model(online_root / "demo" / "1")
    user = model.users.ids[7]
    seen = set(model.seen_rows(7).tolist())
    unseen = [model.items.ids[r] for r in range(len(model.items.ids)) if r not in seen]
    yield user, unseen


def test_an_event_changes_the_next_recommend_on_every_worker(
        online_root: pathlib.Path, tmp_path: pathlib.Path, a_user: tuple[str, list[str]]) -> None:
    user, _ = a_user
    with running_sidecar(online_root, "demo", workers=2, extra_args=_online(tmp_path)) as sc:
        stubs = _stubs(sc)
        before = [_items(s, user, 50) for s in stubs]
        assert all(source == reco_pb2.SOURCE_MODEL for _, source in before)
        liked = before[0][0][0]  # the top item: once liked it must leave the list (seen)
        answer = stubs[0].Feedback(reco_pb2.FeedbackRequest(events=[_event("e1", user, liked)]), timeout=30)
        assert (answer.accepted, answer.duplicates) == (1, 0)
        for stub in stubs:  # no waiting: OK means every worker answers from the new vector
            items, source = _items(stub, user, 50)
            assert source == reco_pb2.SOURCE_ONLINE
            assert liked not in items
            assert items != before[0][0]
            (batch,) = stub.BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=[user], n=50), timeout=10)
            assert batch.source == reco_pb2.SOURCE_ONLINE
            assert [i.item_id for i in batch.items] == items
        again = stubs[1].Feedback(reco_pb2.FeedbackRequest(events=[_event("e1", user, liked)]), timeout=30)
        assert (again.accepted, again.duplicates) == (0, 1)
        # the learner runs below the workers' priority (runtime/learner/process.py)
        workers = {s.GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=10).worker.pid for s in stubs}
        nice = {pid: os.getpriority(os.PRIO_PROCESS, pid) for pid in workers}
        assert os.getpriority(os.PRIO_PROCESS, learner_pid(sc)) == max(nice.values()) + NICENESS


def test_a_user_unknown_at_training_is_answered_from_their_events(
        online_root: pathlib.Path, tmp_path: pathlib.Path, a_user: tuple[str, list[str]]) -> None:
    _, unseen = a_user
    with running_sidecar(online_root, "demo", workers=2, extra_args=_online(tmp_path)) as sc:
        stubs = _stubs(sc)
        assert _items(stubs[0], "newcomer")[1] == reco_pb2.SOURCE_POPULAR
        events = [_event(f"n{i}", "newcomer", item, "share") for i, item in enumerate(unseen[:3])]
        assert stubs[1].Feedback(reco_pb2.FeedbackRequest(events=events), timeout=30).accepted == 3
        for stub in stubs:
            items, source = _items(stub, "newcomer")
            assert source == reco_pb2.SOURCE_ONLINE_NEW_USER
            assert not set(items) & set(unseen[:3])
            # BatchRecommend answers them as Recommend does, item for item
            (batch,) = stub.BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=["newcomer"], n=10), timeout=10)
            assert batch.source == reco_pb2.SOURCE_ONLINE_NEW_USER
            assert [i.item_id for i in batch.items] == items


def _once_online(stub: reco_pb2_grpc.RecommenderStub, user: str, n: int) -> tuple[list[str], int]:
    def answer() -> tuple[list[str], int] | None:
        listed, source = _items(stub, user, n)
        return (listed, source) if source in (reco_pb2.SOURCE_ONLINE, reco_pb2.SOURCE_ONLINE_NEW_USER) else None
    found = wait_until(answer, 60, f"{user} answered online")
    assert found is not None
    return found




def _feed_until_accepted(stub: reco_pb2_grpc.RecommenderStub, events: list[reco_pb2.FeedbackEvent]
                         ) -> reco_pb2.FeedbackResponse:
    """Retries UNAVAILABLE (a learner or worker restarting), as a client should: event ids make
    a retry safe."""
    def attempt() -> reco_pb2.FeedbackResponse | None:
        try:
            answer: reco_pb2.FeedbackResponse = stub.Feedback(reco_pb2.FeedbackRequest(events=events), timeout=30)
            return answer
        except grpc.RpcError as e:
            if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                return None
            raise
    accepted = wait_until(attempt, 60, "Feedback accepted")
    assert accepted is not None
    return accepted


def _journaled(online_dir: pathlib.Path) -> list[str]:
    events, _ = journal.read(online_dir / "journal")
    return [e.event_id for e in events]


def test_nothing_is_lost_or_doubled_across_worker_and_learner_kills_and_a_restart(
        online_root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    from reco_sidecar.artifact import loader

    model = loader.open_model(online_root / "demo" / "1")
    users = [model.users.ids[r] for r in range(5)] + ["fresh-1", "fresh-2"]
    items = list(model.items.ids)
    # 70 events: user u gets items 10 apart, so each event can be checked on its own
    events = [_event(f"ev-{u}-{k}", user, items[(u * 37 + k * 11) % len(items)], "click")
              for u, user in enumerate(users) for k in range(10)]
    accepted: dict[str, int] = {}
    with running_sidecar(online_root, "demo", workers=2, extra_args=_online(tmp_path)) as sc:
        stubs = _stubs(sc)
        for i in range(0, len(events), 7):
            batch = events[i : i + 7]
            if i == 14:
                os.kill(int(stubs[0].GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=10).worker.pid),
                        signal.SIGKILL)
            if i == 35:
                os.kill(learner_pid(sc), signal.SIGKILL)
            answer = _feed_until_accepted(sc.stub(), batch + batch[:2])  # two retried inside the batch
            for e in batch:
                accepted[e.event_id] = accepted.get(e.event_id, 0) + 1
            assert answer.accepted + answer.duplicates == 9
        # a whole batch retried: all duplicates
        again = _feed_until_accepted(sc.stub(), events[:7])
        assert (again.accepted, again.duplicates) == (0, 7)
        sc.proc.send_signal(signal.SIGTERM)
        sc.proc.wait(30)
    ids = _journaled(tmp_path / "online")
    assert sorted(ids) == sorted(e.event_id for e in events)  # each once: none lost, none doubled
    with running_sidecar(online_root, "demo", workers=2, extra_args=_online(tmp_path)) as sc:
        stubs = _stubs(sc)
        for user in users:
            mine = {e.item_id for e in events if e.user_id == user}
            for stub in stubs:
                listed, source = _items(stub, user, len(items))
                assert source in (reco_pb2.SOURCE_ONLINE, reco_pb2.SOURCE_ONLINE_NEW_USER)
                assert not mine & set(listed), "an event's item is recommended again after the restart"
        assert _feed_until_accepted(sc.stub(), events[7:14]).duplicates == 7


def test_a_reload_keeps_only_the_events_after_the_new_versions_as_of(
        demo_root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    online_root = online_copy(demo_root, tmp_path / "root")  # a version is published into it
    from harness.versions import copy_version
    from reco_sidecar.artifact import loader

    items = list(loader.open_model(online_root / "demo" / "1").items.ids)
    as_of = time.time() - 3600
    old, new, later = items[5], items[6], items[7]
    before = _event("r-old", "drifter", old, "share", when=as_of - 60)
    after = _event("r-new", "drifter", new, "share", when=as_of + 60)
    with running_sidecar(online_root, "demo", workers=2, extra_args=_online(tmp_path)) as sc:
        stubs = _stubs(sc)
        assert stubs[0].Feedback(reco_pb2.FeedbackRequest(events=[before, after]), timeout=30).accepted == 2
        for stub in stubs:  # version 1 has no as_of: it learns from both
            listed, source = _items(stub, "drifter", len(items))
            assert source == reco_pb2.SOURCE_ONLINE_NEW_USER and old not in listed and new not in listed

        def trained_until(manifest: dict[str, object]) -> None:
            manifest["as_of"] = as_of

        version = copy_version(online_root / "demo", 1, edit=trained_until)
        assert sc.stub().Reload(reco_pb2.ReloadRequest(version=str(version)), timeout=120).new_version == version
        for stub in stubs:  # version 2 was trained up to as_of: the older event is its own
            # The learner began solving version 2 when the reload began; its table may come a
            # moment after the workers switch (docs/online.md, "Reload").
            listed, source = _once_online(stub, "drifter", len(items))
            assert source == reco_pb2.SOURCE_ONLINE_NEW_USER
            assert old in listed and new not in listed
        # nothing is counted twice: both are known still, and a new one counts once
        again = stubs[1].Feedback(reco_pb2.FeedbackRequest(
            events=[before, after, _event("r-later", "drifter", later, "share")]), timeout=30)
        assert (again.accepted, again.duplicates) == (1, 2)
        for stub in stubs:
            listed, _ = _items(stub, "drifter", len(items))
            assert old in listed and new not in listed and later not in listed
    assert sorted(_journaled(tmp_path / "online")) == ["r-later", "r-new", "r-old"]


def test_an_experiment_arm_with_online_off_answers_from_the_trained_vectors(
        online_root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    from reco_sidecar.artifact import loader

    model = loader.open_model(online_root / "demo" / "1")
    experiments = tmp_path / "experiments.toml"
    experiments.write_text("""
[[experiments]]
name = "online-ab"
salt = "online-ab-1"
share = 1.0
arms = [
  { name = "learning", model = "demo", weight = 1 },
  { name = "frozen", model = "demo", weight = 1, online = false },
]
""")
    users = [model.users.ids[r] for r in range(40)]
    items = model.items.ids
    args = [*_online(tmp_path), "--experiments", str(experiments)]
    with running_sidecar(online_root, "demo", workers=2, extra_args=args) as sc:
        events = [_event(f"ab-{u}", user, items[u], "share") for u, user in enumerate(users)]
        assert sc.stub().Feedback(reco_pb2.FeedbackRequest(events=events), timeout=30).accepted == len(users)
        arms: dict[str, set[int]] = {}
        for stub in _stubs(sc):
            for user in users:
                r = stub.Recommend(reco_pb2.RecommendRequest(user_id=user, n=5, omit_jsonld=True), timeout=10)
                arms.setdefault(r.arm, set()).add(r.source)
        assert arms == {"learning": {reco_pb2.SOURCE_ONLINE}, "frozen": {reco_pb2.SOURCE_MODEL}}
