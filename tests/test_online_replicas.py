"""Several replicas sharing Feedback events through one real Redis Stream (docs/online.md,
"The stream"): every replica learns every event, once, and a restarted one catches up."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import pathlib
import signal
from collections.abc import Iterator

import grpc
import pytest

from harness.procs import wait_until
from harness.redis_server import RedisServer, redis_binary, running_redis
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.runtime.learner import journal
from tests.support.models import online_copy
from tests.support.requires import require
from tests.support.server import Sidecar, running_sidecar
from tests.test_metrics import value, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def online_root(demo_root: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """demo, recording the event types `train` records: it accepts Feedback."""
    return online_copy(demo_root, tmp_path_factory.mktemp("online-models") / "root")


@pytest.fixture
def redis_server(tmp_path: pathlib.Path) -> Iterator[RedisServer]:
    require(redis_binary() is not None, "Debian's redis-server")
    with running_redis(tmp_path / "redis") as server:
        yield server


def _args(directory: pathlib.Path, redis_server: RedisServer) -> list[str]:
    return ["--online-dir", str(directory), "--online-stream", redis_server.url]


def _ids(directory: pathlib.Path) -> list[str]:
    events, _ = journal.read(directory / "journal")
    return [e.event_id for e in events]


def _events(prefix: str, items: list[str], count: int, users: int = 5) -> list[reco_pb2.FeedbackEvent]:
    return [reco_pb2.FeedbackEvent(event_id=f"{prefix}-{k}", user_id=f"{prefix}-user-{k % users}",
                                   item_id=items[(k * 7) % len(items)], type="like") for k in range(count)]


def _send(sc: Sidecar, events: list[reco_pb2.FeedbackEvent], per_call: int = 25) -> int:
    accepted = 0
    stub = sc.stub()
    for start in range(0, len(events), per_call):
        accepted += stub.Feedback(reco_pb2.FeedbackRequest(events=events[start : start + per_call]),
                                  timeout=30).accepted
    return accepted


def _converged(directory: pathlib.Path, expected: set[str]) -> bool:
    ids = _ids(directory)
    assert len(ids) == len(set(ids)), "an event was journaled twice"
    return set(ids) == expected


@pytest.fixture(scope="module")
def items(online_root: pathlib.Path) -> list[str]:
    from reco_sidecar.artifact import loader

    return list(loader.open_model(online_root / "demo" / "1").items.ids)


def test_two_replicas_learn_every_event_once(online_root: pathlib.Path, tmp_path: pathlib.Path,
                                             redis_server: RedisServer, items: list[str]) -> None:
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    with running_sidecar(online_root, "demo", extra_args=_args(a_dir, redis_server)) as a, \
            running_sidecar(online_root, "demo", extra_args=[*_args(b_dir, redis_server), "--metrics-port", "0"]) as b:
        to_a, to_b = _events("a", items, 60), _events("b", items, 60)
        assert _send(a, to_a) == 60
        assert _send(b, to_b) == 60
        # the same events sent to the other replica too (a client retrying elsewhere): duplicates
        # there once the stream has brought them, never counted twice
        expected = {e.event_id for e in to_a + to_b}
        wait_until(lambda: _converged(a_dir, expected), 60, "replica a has every event")
        wait_until(lambda: _converged(b_dir, expected), 60, "replica b has every event")
        # The journal takes an event just before the table does: each replica answers from
        # every event once its learner has applied the last one read.
        for sc in (a, b):
            for user in ("a-user-0", "b-user-0"):
                mine = {e.item_id for e in to_a + to_b if e.user_id == user}

                def applied(sc: Sidecar = sc, user: str = user, mine: set[str] = mine) -> bool:
                    r = sc.stub().Recommend(reco_pb2.RecommendRequest(user_id=user, n=len(items),
                                                                      omit_jsonld=True), timeout=10)
                    return r.source == reco_pb2.SOURCE_ONLINE_NEW_USER and not mine & {i.item_id for i in r.items}

                wait_until(applied, 60, f"{user} answered from every event")
        retried = b.stub().Feedback(reco_pb2.FeedbackRequest(events=to_a[:25]), timeout=30)
        assert (retried.accepted, retried.duplicates) == (0, 25)
        # b's learner, the stream's reader, reports how far behind it is: caught up now.
        lag = wait_for(b, lambda s: ("reco_feedback_stream_lag_seconds", frozenset()) in s)
        assert value(lag, "reco_feedback_stream_lag_seconds") == 0.0


def test_a_user_whose_events_reach_both_replicas_at_once_gets_the_same_answer_from_each(
        online_root: pathlib.Path, tmp_path: pathlib.Path, redis_server: RedisServer, items: list[str]) -> None:
    # A known user and a new one, each liking three items three times with weights whose float
    # sum depends on the order; half of each user's events go to each replica, both at once,
    # so each replica learns them in its own order. Converged, both answer alike, bit for bit.
    from reco_sidecar.artifact import loader

    known = sorted(loader.open_model(online_root / "demo" / "1").users.ids)[5]
    users = [known, "split-new"]
    events = [reco_pb2.FeedbackEvent(event_id=f"split-{user}-{k}", user_id=user, item_id=items[(k // 3) * 13],
                                     type="like", weight=(0.1, 0.2, 0.7)[k % 3])
              for user in users for k in range(9)]
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    with running_sidecar(online_root, "demo", extra_args=_args(a_dir, redis_server)) as a, \
            running_sidecar(online_root, "demo", extra_args=_args(b_dir, redis_server)) as b, \
            concurrent.futures.ThreadPoolExecutor(2) as senders:
        to_a, to_b = events[0::2], list(reversed(events[1::2]))
        sent = [senders.submit(_send, a, to_a, 1), senders.submit(_send, b, to_b, 1)]
        assert [f.result(60) for f in sent] == [len(to_a), len(to_b)]
        expected = {e.event_id for e in events}
        wait_until(lambda: _converged(a_dir, expected), 60, "replica a has every event")
        wait_until(lambda: _converged(b_dir, expected), 60, "replica b has every event")

        def answers(sc: Sidecar) -> list[list[tuple[str, float]]]:
            found = []
            for user in users:
                r = sc.stub().Recommend(reco_pb2.RecommendRequest(user_id=user, n=20, omit_jsonld=True), timeout=10)
                found.append([(i.item_id, i.score) for i in r.items])
            return found

        # the table is written just after the journal: the answers settle within moments
        wait_until(lambda: answers(a) == answers(b), 30, "both replicas answer alike")
        same = answers(a)
        assert same == answers(b)
        liked = {e.item_id for e in events}
        for page in same:
            assert page and not liked & {item for item, _ in page}  # every like applied: seen, left out


def test_a_replica_restarted_during_a_burst_catches_up(online_root: pathlib.Path, tmp_path: pathlib.Path,
                                                       redis_server: RedisServer, items: list[str]) -> None:
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    burst = _events("burst", items, 400, users=20)
    expected = {e.event_id for e in burst}
    with running_sidecar(online_root, "demo", extra_args=_args(a_dir, redis_server)) as a, \
            concurrent.futures.ThreadPoolExecutor(1) as sender:
        with running_sidecar(online_root, "demo", extra_args=_args(b_dir, redis_server)) as b:
            sending = sender.submit(_send, a, burst[:200], 5)
            # killed (the whole process tree, as a lost node) once it has read part of the burst,
            # whether or not the rest of it has been sent yet
            wait_until(lambda: len(_ids(b_dir)) >= 50, 60, "the replica read part of the burst")
            os.killpg(b.pgid, signal.SIGKILL)
        assert sending.result(120) == 200
        assert _send(a, burst[200:300]) == 100  # while the replica is down
        with running_sidecar(online_root, "demo", extra_args=_args(b_dir, redis_server)) as b:
            assert _send(a, burst[300:]) == 100
            wait_until(lambda: _converged(b_dir, expected), 60, "the restarted replica has every event")
            assert _converged(a_dir, expected)
            wait_until(lambda: b.stub().Recommend(reco_pb2.RecommendRequest(user_id="burst-user-3", n=5), timeout=10
                                                  ).source == reco_pb2.SOURCE_ONLINE_NEW_USER,
                       60, "the restarted replica answers from the events")


def test_without_redis_feedback_is_unavailable_and_recommend_goes_on(
        online_root: pathlib.Path, tmp_path: pathlib.Path, items: list[str]) -> None:
    require(redis_binary() is not None, "Debian's redis-server")
    directory = tmp_path / "a"
    with contextlib.ExitStack() as redis_running:
        first = redis_running.enter_context(running_redis(tmp_path / "redis"))
        with running_sidecar(online_root, "demo", extra_args=_args(directory, first)) as sc:
            redis_running.close()  # Redis goes away under the running replica
            events = _events("away", items, 3)
            with pytest.raises(grpc.RpcError) as e:
                sc.stub().Feedback(reco_pb2.FeedbackRequest(events=events), timeout=30)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
            assert (e.value.details() or "").startswith("events: the event stream cannot be written")
            assert sc.stub().Recommend(reco_pb2.RecommendRequest(user_id="away-user-0", n=3), timeout=10).items
            assert _ids(directory) == []  # refused: nothing recorded
            with running_redis(tmp_path / "redis-again", port=first.port):
                answer = sc.stub().Feedback(reco_pb2.FeedbackRequest(events=events), timeout=30)
                assert (answer.accepted, answer.duplicates) == (3, 0)
                assert sorted(_ids(directory)) == sorted(e.event_id for e in events)


def test_a_replica_away_longer_than_the_stream_keeps_says_so(online_root: pathlib.Path, tmp_path: pathlib.Path,
                                                             redis_server: RedisServer, items: list[str]) -> None:
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    keep = ["--online-stream-maxlen", "10"]
    with running_sidecar(online_root, "demo", extra_args=[*_args(a_dir, redis_server), *keep]) as a:
        with running_sidecar(online_root, "demo", extra_args=[*_args(b_dir, redis_server), *keep]):
            assert _send(a, _events("before", items, 5)) == 5
            wait_until(lambda: len(_ids(b_dir)) == 5, 60, "the replica read the first events")
        # while it is down the stream is trimmed far past its cursor (MAXLEN ~ trims whole nodes)
        assert _send(a, _events("while-away", items, 1000)) == 1000
        with running_sidecar(online_root, "demo", extra_args=[*_args(b_dir, redis_server), *keep]) as b:
            gaps = wait_until(lambda: [e for e in b.log_events() if e.get("event") == "online_stream_gap"], 60,
                              "the gap logged")
            assert gaps[0]["cursor"] != gaps[0]["first"]
