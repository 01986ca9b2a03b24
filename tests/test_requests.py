"""Serving features through a worker's real gRPC server (in this process): batch, filters,
paging, cold start, fold-in."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import numpy as np
import pytest

from reco_sidecar.artifact import loader
from reco_sidecar.engine.metadata import ItemCatalog
from reco_sidecar.engine.model import Model
from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.server import InProcess, in_process_sidecar


@pytest.fixture(scope="module")
def sidecar(demo_root: pathlib.Path) -> Iterator[InProcess]:
    with in_process_sidecar(demo_root, "demo", extra_args=["--batch-chunk", "64"]) as s:
        yield s


@pytest.fixture(scope="module")
def model(demo_version_dir: pathlib.Path) -> Model:
    return loader.open_model(demo_version_dir)


def _row(model: Model, item_id: str) -> int:
    row = model.items.row(item_id)
    assert row is not None, item_id
    return row


def _catalog(model: Model) -> ItemCatalog:
    assert model.catalog is not None, "the demo model has item metadata"
    return model.catalog


def _ids(resp: Any) -> list[str]:
    return [it.item_id for it in resp.items]


def test_batch_equals_single_recommend_in_request_order(sidecar: InProcess, model: Model) -> None:
    stub = sidecar.stub()
    users = [model.users.ids[i] for i in range(0, len(model.users), 3)] + ["ghost-1", model.users.ids[5], "ghost-2"]
    got = list(stub.BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=users, n=10), timeout=30))
    assert [r.index for r in got] == list(range(len(users)))
    assert [r.user_id for r in got] == users
    for r in got:
        single = stub.Recommend(reco_pb2.RecommendRequest(user_id=r.user_id, n=10))
        assert _ids(r) == _ids(single)
        np.testing.assert_allclose([i.score for i in r.items], [i.score for i in single.items], rtol=1e-6)
        assert r.source == single.source and r.version == single.version == 1
    assert got[-1].source == reco_pb2.SOURCE_POPULAR and not got[-1].jsonld


def test_batch_reports_unknown_users_per_user_without_failing(sidecar: InProcess, model: Model) -> None:
    users = [model.users.ids[0], "ghost", model.users.ids[1]]
    got = list(sidecar.stub().BatchRecommend(
        reco_pb2.BatchRecommendRequest(user_ids=users, n=5, disable_fallback=True, include_jsonld=True)))
    assert [r.error.code for r in got] == ["", "NOT_FOUND", ""]
    assert "ghost" in got[1].error.message and not got[1].items
    assert len(got[0].items) == 5 and got[0].jsonld.startswith('{"@context"')


def test_batch_honours_cancellation_mid_stream(sidecar: InProcess) -> None:
    users = [f"u{i % 600:07d}" for i in range(50_000)]
    stream = sidecar.stub().BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=users, n=10))
    for _ in range(10):
        next(stream)
    stream.cancel()
    with pytest.raises(grpc.RpcError) as e:
        for _ in stream:
            pass
    assert e.value.code() == grpc.StatusCode.CANCELLED


def test_batch_deadline_ends_the_stream(sidecar: InProcess) -> None:
    users = [f"u{i % 600:07d}" for i in range(400_000)]
    with pytest.raises(grpc.RpcError) as e:
        for _ in sidecar.stub().BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=users, n=10), timeout=0.5):
            pass
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # the worker is fine afterwards
    assert len(sidecar.stub().Recommend(reco_pb2.RecommendRequest(user_id="u0000001", n=3)).items) == 3


def test_filters_never_return_excluded_items(sidecar: InProcess, model: Model) -> None:
    stub = sidecar.stub()
    user = model.users.ids[11]
    base = _ids(stub.Recommend(reco_pb2.RecommendRequest(user_id=user, n=20)))
    excluded = base[:7]
    resp = stub.Recommend(reco_pb2.RecommendRequest(user_id=user, n=20,
                                                    filter=reco_pb2.Filter(exclude_item_ids=excluded)))
    assert not set(_ids(resp)) & set(excluded)
    assert _ids(resp)[:13] == base[7:]


def test_candidate_set_restricts_and_ranks_exactly(sidecar: InProcess, model: Model) -> None:
    user_row = 42
    user = model.users.ids[user_row]
    candidates = [model.items.ids[i] for i in range(0, 400, 7)] + ["no-such-item"]
    resp = sidecar.stub().Recommend(reco_pb2.RecommendRequest(
        user_id=user, n=5, filter=reco_pb2.Filter(candidate_item_ids=candidates)))
    rows = [_row(model, c) for c in candidates[:-1]]
    seen = set(model.seen_rows(user_row).tolist())
    rows = [r for r in rows if r not in seen]
    scores = np.asarray(model.item_factors)[rows] @ np.asarray(model.user_factors[user_row])
    expected = [model.items.ids[rows[i]] for i in np.argsort(-scores, kind="stable")[:5]]
    assert _ids(resp) == expected


def test_category_and_tag_filters_use_item_metadata(sidecar: InProcess, model: Model) -> None:
    stub = sidecar.stub()
    resp = stub.Recommend(reco_pb2.RecommendRequest(
        user_id=model.users.ids[3], n=10, filter=reco_pb2.Filter(categories=["cat2"], tags=["even"])))
    assert len(resp.items) == 10
    for it in resp.items:
        row = _row(model, it.item_id)
        assert _catalog(model).categories[row] == "cat2" and "even" in _catalog(model).tags[row]
    sim = stub.Similar(reco_pb2.SimilarRequest(item_id=model.items.ids[0], n=5,
                                               filter=reco_pb2.Filter(categories=["cat1"])))
    assert all(_catalog(model).categories[_row(model, i.item_id)] == "cat1" for i in sim.items)


def test_offset_pages_do_not_overlap_and_concatenate_to_the_full_list(sidecar: InProcess, model: Model) -> None:
    stub = sidecar.stub()
    user = model.users.ids[9]
    full = _ids(stub.Recommend(reco_pb2.RecommendRequest(user_id=user, n=30)))
    pages = [stub.Recommend(reco_pb2.RecommendRequest(user_id=user, n=10, offset=o)) for o in (0, 10, 20)]
    assert [i for p in pages for i in _ids(p)] == full
    assert [p.items[0].rank for p in pages] == [1, 11, 21]
    sims = [_ids(stub.Similar(reco_pb2.SimilarRequest(item_id=model.items.ids[4], n=5, offset=o))) for o in (0, 5)]
    assert not set(sims[0]) & set(sims[1])
    assert sims[0] + sims[1] == _ids(stub.Similar(reco_pb2.SimilarRequest(item_id=model.items.ids[4], n=10)))


def test_include_seen_keeps_seen_items(sidecar: InProcess, model: Model) -> None:
    user_row = 20
    seen = {model.items.ids[r] for r in model.seen_rows(user_row).tolist()}
    assert seen
    resp = sidecar.stub().Recommend(reco_pb2.RecommendRequest(
        user_id=model.users.ids[user_row], n=50, filter=reco_pb2.Filter(include_seen=True)))
    assert set(_ids(resp)) & seen


def test_unknown_user_gets_popular_items_with_popular_source(sidecar: InProcess, model: Model) -> None:
    resp = sidecar.stub().Recommend(reco_pb2.RecommendRequest(user_id="brand-new-user", n=8))
    assert resp.source == reco_pb2.SOURCE_POPULAR
    expected = [model.items.ids[r] for r in model.popular_rows[:8]]
    assert _ids(resp) == expected
    assert [i.score for i in resp.items] == sorted([i.score for i in resp.items], reverse=True)


def test_fold_in_from_a_known_users_items_ranks_close_to_the_stored_vector(sidecar: InProcess, model: Model) -> None:
    stub = sidecar.stub()
    overlaps = []
    for user_row in range(0, len(model.users), 40):
        seen = [model.items.ids[r] for r in model.seen_rows(user_row).tolist()]
        if len(seen) < 5:
            continue
        stored = _ids(stub.Recommend(reco_pb2.RecommendRequest(user_id=model.users.ids[user_row], n=20)))
        folded = stub.Recommend(reco_pb2.RecommendRequest(user_id="anonymous", n=20, recent_item_ids=seen))
        assert folded.source == reco_pb2.SOURCE_FOLD_IN
        assert not set(_ids(folded)) & set(seen)
        overlaps.append(len(set(stored) & set(_ids(folded))) / 20)
    assert len(overlaps) >= 5
    assert np.mean(overlaps) >= 0.7, overlaps


def test_every_response_states_its_source(sidecar: InProcess, model: Model) -> None:
    stub = sidecar.stub()
    sources = {
        stub.Recommend(reco_pb2.RecommendRequest(user_id=model.users.ids[0], n=3)).source,
        stub.Recommend(reco_pb2.RecommendRequest(user_id="x", n=3)).source,
        stub.Recommend(reco_pb2.RecommendRequest(user_id="x", n=3, recent_item_ids=[model.items.ids[0]])).source,
        stub.Similar(reco_pb2.SimilarRequest(item_id=model.items.ids[0], n=3)).source,
    }
    assert sources == {reco_pb2.SOURCE_MODEL, reco_pb2.SOURCE_POPULAR, reco_pb2.SOURCE_FOLD_IN, reco_pb2.SOURCE_ANN}


def test_concurrent_calls_batched_together_give_the_same_answers(sidecar: InProcess, model: Model) -> None:
    users = [model.users.ids[i] for i in range(64)]
    # two connections: calls from both are batched together by the one server
    stubs = [sidecar.stub(), sidecar.stub()]
    sequential = {u: _ids(stubs[0].Recommend(reco_pb2.RecommendRequest(user_id=u, n=10))) for u in users}

    def call(i: int) -> tuple[str, list[str]]:
        u = users[i % len(users)]
        return u, _ids(stubs[i % 2].Recommend(reco_pb2.RecommendRequest(user_id=u, n=10)))

    with ThreadPoolExecutor(32) as pool:
        for u, got in pool.map(call, range(640)):
            assert got == sequential[u]


def test_popular_fallback_with_filters_pages_through_the_popularity_order(sidecar: InProcess, model: Model) -> None:
    stub = sidecar.stub()
    top = [model.items.ids[r] for r in model.popular_rows[:60]]
    resp = stub.Recommend(reco_pb2.RecommendRequest(
        user_id="stranger", n=10, offset=5, filter=reco_pb2.Filter(exclude_item_ids=top[:20], categories=["cat3"])))
    expected = [i for i in (model.items.ids[r] for r in model.popular_rows)
                if i not in top[:20] and _catalog(model).categories[_row(model, i)] == "cat3"][5:15]
    assert _ids(resp) == expected and resp.source == reco_pb2.SOURCE_POPULAR
