"""Random and extreme requests against a worker's real gRPC server (in this process): only
documented status codes come back, answers keep their invariants, and the server stays up and
answers as before. Reload, which the supervisor runs across the workers, gets its hostile
versions through a real process tree."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from reco_sidecar.artifact import loader
from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.server import InProcess, in_process_sidecar, running_sidecar

DOCUMENTED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}
MAX_N, MAX_OFFSET, MAX_IDS, MAX_BATCH_USERS = 200, 1000, 64, 50
HOSTILE = settings(max_examples=150, deadline=None, database=None)
ARGS = ["--max-n", str(MAX_N), "--max-offset", str(MAX_OFFSET), "--max-ids", str(MAX_IDS),
        "--max-batch-users", str(MAX_BATCH_USERS), "--batch-chunk", "8", "--max-message-bytes", "65536"]


@pytest.fixture(scope="module")
def demo_ids(demo_root: pathlib.Path) -> tuple[list[str], list[str]]:
    model = loader.open_model(demo_root / "demo" / "1", )
    return list(model.users.ids), list(model.items.ids)


@pytest.fixture(scope="module")
def sidecar(demo_root: pathlib.Path) -> Iterator[InProcess]:
    with in_process_sidecar(demo_root, "demo", extra_args=ARGS) as s:
        yield s


@pytest.fixture(scope="module")
def known_good(sidecar: InProcess, demo_ids: tuple[list[str], list[str]]) -> tuple[reco_pb2.RecommendRequest,
               list[tuple[str, float]]]:
    """A request and its answer, taken before any hostile input."""
    users, items = demo_ids
    request = reco_pb2.RecommendRequest(user_id=users[5], n=20, offset=3,
                                        filter=reco_pb2.Filter(exclude_item_ids=items[:4]))
    answer = sidecar.stub().Recommend(request)
    return request, [(i.item_id, i.score) for i in answer.items]


def odd_text() -> st.SearchStrategy[str]:
    # Long ids are repeated short ones: drawing thousands of characters one by one is slow.
    long = st.builds(lambda part, k: part * k, st.text(min_size=1, max_size=3), st.integers(150, 1500))
    return st.one_of(
        st.text(max_size=40),
        long,
        st.sampled_from(["", " ", "\x00", "u\x00001", "\u202etxet", "e\u0301\u0301\u0301", "🧨" * 200,
                         "\ufeff", "﷽", "../../etc/passwd", "%s%n", "' OR 1=1 --"]),
    )


def ids(known: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(known), odd_text())


def id_lists(known: list[str]) -> st.SearchStrategy[list[str]]:
    # Long lists are built, not drawn id by id, so that thousands of ids stay cheap.
    many = st.builds(lambda k, prefix: [f"{prefix}{i}" for i in range(k)], st.integers(0, 6000),
                     st.text(max_size=4))
    around_the_limit = st.builds(lambda k, start: (known * 2)[start:start + k], st.integers(MAX_IDS - 2, MAX_IDS + 2),
                                 st.integers(0, len(known)))
    return st.one_of(st.lists(ids(known), max_size=8), around_the_limit, many)


INTS = st.one_of(st.integers(-3, MAX_N + 3), st.integers(MAX_OFFSET - 2, MAX_OFFSET + 2),
                 st.integers(-(2**31), 2**31 - 1))
MODELS = st.one_of(st.just(""), st.just("demo"), odd_text())
TIMEOUTS = st.one_of(st.just(30.0), st.just(30.0), st.floats(min_value=1e-6, max_value=2e-3), st.just(0.0))


def filters(items: list[str]) -> st.SearchStrategy[reco_pb2.Filter]:
    return st.builds(reco_pb2.Filter, exclude_item_ids=id_lists(items), candidate_item_ids=id_lists(items),
                     categories=st.lists(odd_text(), max_size=3), tags=st.lists(odd_text(), max_size=3),
                     include_seen=st.booleans())


def maybe_filter(items: list[str]) -> st.SearchStrategy[reco_pb2.Filter | None]:
    return st.one_of(st.none(), filters(items))


def call(method: Callable[..., Any], request: Message, timeout: float) -> tuple[grpc.StatusCode, Any]:
    try:
        result = method(request, timeout=timeout)
        if not hasattr(result, "model"):
            result = list(result)
        return grpc.StatusCode.OK, result
    except grpc.RpcError as e:
        return e.code(), e.details()


def check_page(items: Sequence[Any], n: int, offset: int) -> None:
    assert len(items) <= n
    assert [i.rank for i in items] == list(range(offset + 1, offset + 1 + len(items)))
    assert len({i.item_id for i in items}) == len(items)
    scores = [i.score for i in items]
    assert scores == sorted(scores, reverse=True)


def test_hostile_recommend(sidecar: InProcess, known_good: tuple[reco_pb2.RecommendRequest, list[tuple[str, float]]],
                           demo_ids: tuple[list[str], list[str]]) -> None:
    users, items = demo_ids
    stub = sidecar.stub()

    @HOSTILE
    @given(model=MODELS, user=ids(users), n=INTS, offset=INTS, f=maybe_filter(items), recent=id_lists(items),
           no_fallback=st.booleans(), timeout=TIMEOUTS)
    def run(model: str, user: str, n: int, offset: int, f: reco_pb2.Filter | None, recent: list[str],
            no_fallback: bool, timeout: float) -> None:
        request = reco_pb2.RecommendRequest(model=model, user_id=user, n=n, offset=offset, filter=f,
                                            recent_item_ids=recent, disable_fallback=no_fallback)
        code, result = call(stub.Recommend, request, timeout)
        assert code in DOCUMENTED, (code, result)
        if code == grpc.StatusCode.OK:
            assert result.model == "demo" and result.user_id == user
            check_page(result.items, n, offset)

    run()


def test_hostile_similar(sidecar: InProcess, demo_ids: tuple[list[str], list[str]]) -> None:
    _, items = demo_ids
    stub = sidecar.stub()

    @HOSTILE
    @given(model=MODELS, item=ids(items), n=INTS, offset=INTS, f=maybe_filter(items), timeout=TIMEOUTS)
    def run(model: str, item: str, n: int, offset: int, f: reco_pb2.Filter | None, timeout: float) -> None:
        request = reco_pb2.SimilarRequest(model=model, item_id=item, n=n, offset=offset, filter=f)
        code, result = call(stub.Similar, request, timeout)
        assert code in DOCUMENTED, (code, result)
        if code == grpc.StatusCode.OK:
            assert result.item_id == item and item not in {i.item_id for i in result.items}
            check_page(result.items, n, offset)

    run()


def test_hostile_batch_recommend(sidecar: InProcess, demo_ids: tuple[list[str], list[str]]) -> None:
    users, items = demo_ids
    stub = sidecar.stub()
    user_lists = st.one_of(st.lists(ids(users), max_size=MAX_BATCH_USERS + 3),
                           st.lists(st.sampled_from(users), min_size=MAX_BATCH_USERS - 2,
                                    max_size=MAX_BATCH_USERS))

    @HOSTILE
    @given(model=MODELS, batch=user_lists, n=INTS, f=maybe_filter(items), jsonld=st.booleans(),
           no_fallback=st.booleans(), timeout=TIMEOUTS)
    def run(model: str, batch: list[str], n: int, f: reco_pb2.Filter | None, jsonld: bool, no_fallback: bool,
            timeout: float) -> None:
        request = reco_pb2.BatchRecommendRequest(model=model, user_ids=batch, n=n, filter=f,
                                                 include_jsonld=jsonld, disable_fallback=no_fallback)
        code, result = call(stub.BatchRecommend, request, timeout)
        assert code in DOCUMENTED, (code, result)
        if code == grpc.StatusCode.OK:
            assert [r.index for r in result] == list(range(len(batch)))
            # documented: empty or longer than 512 bytes
            refused = [not u or len(u.encode("utf-8", "surrogatepass")) > 512 for u in batch]
            # a refused id is never echoed back
            assert [r.user_id for r in result] == ["" if bad else u for u, bad in zip(batch, refused, strict=True)]
            for r, bad in zip(result, refused, strict=True):
                # Which code each gets is test_service.py's; here: refused ids, and only those
                # (or unknown users without a fallback), get an error and no items.
                if bad:
                    assert r.error.code and not r.items
                elif r.HasField("error"):
                    assert no_fallback and r.error.code and not r.items
                else:
                    check_page(r.items, n, 0)
                    assert bool(r.jsonld) == jsonld

    run()


def versions() -> st.SearchStrategy[str]:
    # Characters that str.isdigit accepts but int() refuses ("²") are checked in test_versions.
    return st.one_of(odd_text(), st.integers(-(2**70), 2**70).map(str), st.sampled_from(["latest", "1", " 1 "]))


def test_hostile_status(sidecar: InProcess) -> None:
    stub = sidecar.stub()

    @HOSTILE
    @given(model=MODELS, timeout=TIMEOUTS)
    def run(model: str, timeout: float) -> None:
        code, result = call(stub.GetModelStatus, reco_pb2.GetModelStatusRequest(model=model), timeout)
        assert code in DOCUMENTED, (code, result)
        if code == grpc.StatusCode.OK:
            assert result.model == "demo" and result.version == 1

    run()


def test_hostile_reload_through_the_supervisor(demo_root: pathlib.Path,
                                               known_good: tuple[reco_pb2.RecommendRequest,
                                               list[tuple[str, float]]]) -> None:
    request, _ = known_good
    with running_sidecar(demo_root, "demo", workers=2, extra_args=ARGS) as sc:
        stub = sc.stub()
        answer = stub.Recommend(request, timeout=30)
        before = [(i.item_id, i.score) for i in answer.items]

        @HOSTILE
        @given(model=MODELS, version=versions(), timeout=TIMEOUTS)
        def run(model: str, version: str, timeout: float) -> None:
            code, result = call(stub.Reload, reco_pb2.ReloadRequest(model=model, version=version), timeout)
            assert code in DOCUMENTED, (code, result)
            if code == grpc.StatusCode.OK:
                assert result.new_version == 1

        run()
        for address in sc.worker_addresses:
            after = sc.stub(address).Recommend(request, timeout=30)
            assert [(i.item_id, i.score) for i in after.items] == before
        assert sc.proc.poll() is None
        # No worker died or was restarted along the way.
        assert not [e for e in sc.log_events() if e.get("event") in ("worker_exit", "worker_crashed")
                    and e.get("level") != "info"]


def test_afterwards_the_server_is_up_and_answers_as_before(sidecar: InProcess,
                                                           known_good: tuple[reco_pb2.RecommendRequest,
                                                           list[tuple[str, float]]]) -> None:
    request, before = known_good
    after = sidecar.stub().Recommend(request, timeout=30)
    assert [(i.item_id, i.score) for i in after.items] == before
    assert sidecar.serving_thread_alive()
    # No call ended in an error the server did not mean (an exception in a handler is INTERNAL),
    # including calls whose client gave up before the answer.
    assert not sidecar.codes_counted() & {"INTERNAL", "UNKNOWN"}, sidecar.codes_counted()
