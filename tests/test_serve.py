"""End to end through the real process tree: train, serve, query over real gRPC channels."""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest

from reco_sidecar.artifact import loader
from reco_sidecar.engine import ann
from reco_sidecar.engine.query import Restriction
from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.server import Sidecar, running_sidecar


@pytest.fixture(scope="module")
def sidecar(demo_root: pathlib.Path) -> Iterator[Sidecar]:
    with running_sidecar(demo_root, "demo", workers=1, extra_args=["--max-n", "200"]) as s:
        yield s


@pytest.fixture(scope="module")
def arrays(demo_version_dir: pathlib.Path) -> dict[str, object]:
    m = loader.open_model(demo_version_dir)
    return {"users": np.array(m.user_factors), "items": np.array(m.item_factors), "user_ids": m.users.ids,
            "item_ids": m.items.ids, "seen": [set(m.seen_rows(r).tolist()) for r in range(len(m.users))]}


def test_recommend_returns_n_distinct_unseen_items_scored_by_dot_product(sidecar: Sidecar, arrays: dict[str,
                                                                         Any]) -> None:
    stub = sidecar.stub()
    item_row = {iid: r for r, iid in enumerate(arrays["item_ids"])}
    for u in (0, 7, 123, 311):
        uid = arrays["user_ids"][u]
        resp = stub.Recommend(reco_pb2.RecommendRequest(user_id=uid, n=25))
        assert resp.model == "demo" and resp.version == 1 and resp.source == reco_pb2.SOURCE_MODEL
        rows = [item_row[it.item_id] for it in resp.items]
        assert len(rows) == 25 and len(set(rows)) == 25
        assert not set(rows) & arrays["seen"][u]
        expected = arrays["items"][rows] @ arrays["users"][u]
        np.testing.assert_allclose([it.score for it in resp.items], expected, rtol=1e-5, atol=1e-5)
        # exactness: nothing unseen scores higher than the last returned item
        all_scores = arrays["items"] @ arrays["users"][u]
        all_scores[list(arrays["seen"][u])] = -np.inf
        assert np.sort(all_scores)[::-1][24] == pytest.approx(resp.items[-1].score, abs=1e-5)
        assert [it.rank for it in resp.items] == list(range(1, 26))


def test_similar_never_returns_the_query_item_and_matches_exact_cosine(sidecar: Sidecar, arrays: dict[str, Any],
                                                                        demo_version_dir: pathlib.Path) -> None:
    stub = sidecar.stub()
    # the index alone, at the manifest's search_k, must reach the recall it claims
    index_model = loader.open_model(demo_version_dir, )
    index_model = dataclasses.replace(index_model, neighbours=None, neighbour_scores=None)
    unit_all = ann.normalized(arrays["items"])
    sample = np.arange(0, len(arrays["item_ids"]), 5)
    truth_all = ann.exact_neighbours(unit_all, sample, 10)
    got_all = [index_model.similar(int(q), 0, 10, Restriction.none()).rows.tolist() for q in sample]
    index_recall = np.mean([len(set(g) & set(t.tolist())) / 10 for g, t in zip(got_all, truth_all, strict=True)])
    assert index_recall >= 0.9, f"annoy recall@10 {index_recall:.3f}"
    unit = ann.normalized(arrays["items"])
    queries = np.arange(0, len(arrays["item_ids"]), 3)
    truth = ann.exact_neighbours(unit, queries, 10)
    hits = 0
    for q, true_rows in zip(queries, truth, strict=True):
        resp = stub.Similar(reco_pb2.SimilarRequest(item_id=arrays["item_ids"][q], n=10))
        got = [arrays["item_ids"].index(it.item_id) for it in resp.items]
        assert q not in got and len(got) == 10
        hits += len(set(got) & set(true_rows.tolist()))
        assert resp.source == reco_pb2.SOURCE_ANN
    recall = hits / (10 * len(queries))
    assert recall >= 0.9, f"recall@10 {recall:.3f}"
    manifest = loader.verify(demo_version_dir)
    assert manifest.ann.search_k > 0 and manifest.ann.trees > 0 and manifest.ann.recall_at_10 >= 0.9


def test_similar_from_the_exact_table_is_the_exact_cosine_ranking(sidecar: Sidecar, arrays: dict[str, Any],
                                                                 demo_version_dir: pathlib.Path) -> None:
    width = loader.verify(demo_version_dir).ann.exact_neighbours
    assert width >= 20
    unit = ann.normalized(arrays["items"])
    queries = np.arange(1, len(arrays["item_ids"]), 37)
    truth = ann.exact_neighbours(unit, queries, 20)
    stub = sidecar.stub()
    for q, true_rows in zip(queries, truth, strict=True):
        resp = stub.Similar(reco_pb2.SimilarRequest(item_id=arrays["item_ids"][q], n=20))
        assert [it.item_id for it in resp.items] == [arrays["item_ids"][r] for r in true_rows]
        expected = unit[true_rows] @ unit[q]
        np.testing.assert_allclose([it.score for it in resp.items], expected, atol=1e-5)


def test_similar_past_the_table_uses_the_index_and_still_excludes_the_item(sidecar: Sidecar, arrays: dict[str, Any],
                                                                           demo_version_dir: pathlib.Path) -> None:
    width = loader.verify(demo_version_dir).ann.exact_neighbours
    item = arrays["item_ids"][5]
    resp = sidecar.stub().Similar(reco_pb2.SimilarRequest(item_id=item, n=width + 30))
    ids = [it.item_id for it in resp.items]
    assert len(ids) == width + 30 and item not in ids and len(set(ids)) == len(ids)


def test_model_status_reports_the_loaded_version(sidecar: Sidecar, demo_version_dir: pathlib.Path) -> None:
    st = sidecar.stub().GetModelStatus(reco_pb2.GetModelStatusRequest())
    assert (st.model, st.version, st.state) == ("demo", 1, reco_pb2.MODEL_STATE_AVAILABLE)
    assert st.user_count == 600 or st.user_count > 500
    assert st.item_count > 300 and st.factors == 16 and st.algorithm == "als"
    assert st.path == str(demo_version_dir) and st.load_seconds > 0 and st.loaded_at > 0
    assert st.has_item_metadata
    assert [(v.version, v.state) for v in st.versions] == [(1, reco_pb2.MODEL_STATE_AVAILABLE)]


def test_model_status_path_is_absolute_when_the_root_was_given_relative(demo_root: pathlib.Path) -> None:
    relative = pathlib.Path(os.path.relpath(demo_root))
    assert not relative.is_absolute()
    with running_sidecar(relative, "demo", workers=1) as sc:
        st = sc.stub().GetModelStatus(reco_pb2.GetModelStatusRequest())
    assert st.path == str(demo_root / "demo" / "1")


def test_the_server_still_answers_after_bad_input(sidecar: Sidecar, arrays: dict[str, Any]) -> None:
    # Through the whole process tree; the codes these get are test_service.py's table.
    stub = sidecar.stub()
    for bad in (reco_pb2.RecommendRequest(user_id="", n=5), reco_pb2.RecommendRequest(user_id="u0000001", n=0),
                reco_pb2.RecommendRequest(user_id="u0000001", n=5, recent_item_ids=["x" * 1000] * 20_000)):
        with pytest.raises(grpc.RpcError):
            stub.Recommend(bad, timeout=30)
    resp = stub.Recommend(reco_pb2.RecommendRequest(user_id=arrays["user_ids"][1], n=3), timeout=30)
    assert len(resp.items) == 3
