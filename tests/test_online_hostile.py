"""Hostile Feedback (docs/online.md, docs/api.md): refused with a status naming the field, or
bounded; the sidecar keeps serving whatever arrives."""

from __future__ import annotations

import math
import pathlib
from collections.abc import Iterator

import grpc
import pytest

from reco_sidecar.gen.reco.v1 import reco_pb2, reco_pb2_grpc
from tests.support.models import online_copy
from tests.support.server import Sidecar, running_sidecar

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def online_root(demo_root: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """demo, recording the event types `train` records: it accepts Feedback."""
    return online_copy(demo_root, tmp_path_factory.mktemp("online-models") / "root")

MAX_USERS = 16  # two buckets of 8


@pytest.fixture(scope="module")
def sidecar(online_root: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    directory = tmp_path_factory.mktemp("online")
    tokens = directory / "callers"
    tokens.write_text("caller-token\n")
    args = ["--online-dir", str(directory / "state"), "--online-max-users", str(MAX_USERS),
            "--auth-tokens-file", str(tokens)]
    with running_sidecar(online_root, "demo", workers=2, extra_args=args) as sc:
        yield sc


AUTH = [("authorization", "Bearer caller-token")]


def _event(*, event_id: str = "e", user_id: str = "u", item_id: str = "i", type: str = "click",
           weight: float = 0.0, time: float = 0.0) -> reco_pb2.FeedbackEvent:
    return reco_pb2.FeedbackEvent(event_id=event_id, user_id=user_id, item_id=item_id, type=type, weight=weight,
                                  time=time)


def _refusal(stub: reco_pb2_grpc.RecommenderStub, events: list[reco_pb2.FeedbackEvent]
             ) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as e:
        stub.Feedback(reco_pb2.FeedbackRequest(events=events), timeout=30, metadata=AUTH)
    return e.value.code(), e.value.details() or ""


@pytest.mark.parametrize(("events", "code", "field"), [
    ([], grpc.StatusCode.INVALID_ARGUMENT, "events"),
    ([_event(), _event(event_id="f", type="purchase")], grpc.StatusCode.INVALID_ARGUMENT, "events[1].type"),
    ([_event(type="")], grpc.StatusCode.INVALID_ARGUMENT, "events[0].type"),
    ([_event(weight=math.nan)], grpc.StatusCode.INVALID_ARGUMENT, "events[0].weight"),
    ([_event(weight=math.inf)], grpc.StatusCode.INVALID_ARGUMENT, "events[0].weight"),
    ([_event(weight=1e9)], grpc.StatusCode.INVALID_ARGUMENT, "events[0].weight"),
    ([_event(time=math.nan)], grpc.StatusCode.INVALID_ARGUMENT, "events[0].time"),
    ([_event(time=-1.0)], grpc.StatusCode.INVALID_ARGUMENT, "events[0].time"),
    ([_event(time=2e11)], grpc.StatusCode.INVALID_ARGUMENT, "events[0].time"),
    ([_event(weight=-1.0)], grpc.StatusCode.INVALID_ARGUMENT, "events[0].weight"),
    ([_event(user_id="x" * 513)], grpc.StatusCode.INVALID_ARGUMENT, "events[0].user_id"),
    ([_event(item_id="")], grpc.StatusCode.INVALID_ARGUMENT, "events[0].item_id"),
    ([_event(event_id="")], grpc.StatusCode.INVALID_ARGUMENT, "events[0].event_id"),
    ([_event(event_id="e" * 513)], grpc.StatusCode.INVALID_ARGUMENT, "events[0].event_id"),
    ([_event(event_id=f"e{i}") for i in range(1001)], grpc.StatusCode.RESOURCE_EXHAUSTED, "events"),
])
def test_bad_events_are_refused_naming_the_field(sidecar: Sidecar, events: list[reco_pb2.FeedbackEvent],
                                                 code: grpc.StatusCode, field: str) -> None:
    got, details = _refusal(sidecar.stub(), events)
    assert got == code
    assert details.startswith(f"{field}: ")


def test_a_refused_message_records_none_of_its_events(sidecar: Sidecar) -> None:
    stub = sidecar.stub()
    good = _event(event_id="kept-out", user_id="refused-user")
    _refusal(stub, [good, _event(event_id="bad", type="nope")])
    answer = stub.Feedback(reco_pb2.FeedbackRequest(events=[good]), timeout=30, metadata=AUTH)
    assert (answer.accepted, answer.duplicates) == (1, 0)


def test_feedback_needs_a_caller_token(sidecar: Sidecar) -> None:
    with pytest.raises(grpc.RpcError) as e:
        sidecar.stub().Feedback(reco_pb2.FeedbackRequest(events=[_event(event_id="t")]), timeout=30)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as e:
        sidecar.stub().FeedbackStream(iter([reco_pb2.FeedbackRequest(events=[_event(event_id="t")])]), timeout=30)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_malformed_bytes_are_invalid_argument(sidecar: Sidecar) -> None:
    channel = grpc.insecure_channel(sidecar.address)
    sidecar.channels.append(channel)
    call = channel.unary_unary("/reco.v1.Recommender/Feedback", None, None)  # raw bytes both ways
    with pytest.raises(grpc.RpcError) as e:
        call(b"\xff\xff\xff", timeout=30, metadata=(AUTH[0],))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_stream_counts_every_message_and_stops_at_a_bad_one(sidecar: Sidecar) -> None:
    stub = sidecar.stub()
    batches = [reco_pb2.FeedbackRequest(events=[_event(event_id=f"s{k}-{i}", user_id=f"streamer-{k % 3}")
                                                for i in range(50)]) for k in range(6)]
    answer = stub.FeedbackStream(iter(batches + batches[:2]), timeout=60, metadata=AUTH)
    assert (answer.accepted, answer.duplicates) == (300, 100)
    bad = reco_pb2.FeedbackRequest(events=[_event(event_id="s-bad", weight=math.nan)])
    after = reco_pb2.FeedbackRequest(events=[_event(event_id="s-after")])
    with pytest.raises(grpc.RpcError) as e:
        stub.FeedbackStream(iter([bad, after]), timeout=60, metadata=AUTH)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (e.value.details() or "").startswith("events[0].weight: ")


def test_a_flood_of_users_keeps_at_most_the_bound(sidecar: Sidecar, online_root: pathlib.Path) -> None:
    from reco_sidecar.artifact import loader

    items = loader.open_model(online_root / "demo" / "1").items.ids
    stub = sidecar.stub()
    users = [f"flood-{u}" for u in range(10 * MAX_USERS)]
    for start in range(0, len(users), 40):
        events = [_event(event_id=f"fl-{u}", user_id=u, item_id=items[k % len(items)], type="share")
                  for k, u in enumerate(users[start : start + 40])]
        assert stub.Feedback(reco_pb2.FeedbackRequest(events=events), timeout=30, metadata=AUTH).accepted == 40
    online = 0
    for worker in sidecar.worker_addresses:
        w = sidecar.stub(worker)
        sources = [w.Recommend(reco_pb2.RecommendRequest(user_id=u, n=5, omit_jsonld=True), timeout=10,
                               metadata=AUTH).source for u in users]
        answered = sum(s == reco_pb2.SOURCE_ONLINE_NEW_USER for s in sources)
        assert 0 < answered <= MAX_USERS
        # the newest user is never the one evicted
        assert sources[-1] == reco_pb2.SOURCE_ONLINE_NEW_USER
        online = max(online, answered)
    assert online <= MAX_USERS
    # still serving on every worker after it all
    for worker in sidecar.worker_addresses:
        assert sidecar.stub(worker).Recommend(reco_pb2.RecommendRequest(user_id="u", n=3), timeout=10,
                                              metadata=AUTH).items


def test_without_an_online_dir_feedback_is_failed_precondition(online_root: pathlib.Path) -> None:
    from tests.support.server import in_process_sidecar

    with in_process_sidecar(online_root, "demo") as sc, pytest.raises(grpc.RpcError) as e:
        sc.stub().Feedback(reco_pb2.FeedbackRequest(events=[_event()]), timeout=30)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (e.value.details() or "").startswith("events: online learning is off")
