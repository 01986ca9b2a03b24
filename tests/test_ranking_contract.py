"""The determinism contract of docs/api.md checked from a client, on a model built for it:
many items share their factors exactly (equal scores), and near-copies differ by less than
float32 rounding of a product can tell. Through a real `serve` process tree and gRPC:

- a score is the dot product's float64 value (products exact, a fixed pairwise sum), rounded
  once to float32 — recomputed here from the artifact's arrays;
- order is by score, equal scores to the earlier item of the model's item list;
- nothing left out that passes the filter ranks before the last item returned;
- the same holds alone, among concurrent calls, in BatchRecommend, for fold-in users and for
  the popular fallback's pages.
"""

from __future__ import annotations

import itertools
import pathlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from reco_sidecar.artifact import writer
from reco_sidecar.gen.reco.v1 import reco_pb2, reco_pb2_grpc
from tests.support.server import running_sidecar

USERS, ITEMS, D = 120, 900, 32
TIMEOUT = 60.0


def content() -> writer.ArtifactContent:
    rng = np.random.default_rng(21)
    items = (rng.standard_normal((ITEMS, D)) * rng.lognormal(0, 0.5, (ITEMS, 1))).astype(np.float32)
    items[rng.integers(0, ITEMS, ITEMS // 3)] = items[rng.integers(0, ITEMS, ITEMS // 3)]  # equal scores
    base = items[7]
    near = rng.integers(0, ITEMS, ITEMS // 4)
    wiggle = rng.integers(-8, 9, (len(near), D)).astype(np.float32) * np.float32(2.0**-22)
    items[near] = base * (np.float32(1.0) + wiggle)  # within float32 rounding of each other
    seen = [np.sort(rng.choice(ITEMS, 20, replace=False)) for _ in range(USERS)]
    return writer.ArtifactContent(
        user_ids=[f"u{i:04d}" for i in range(USERS)], item_ids=[f"i{i:04d}" for i in range(ITEMS)],
        user_factors=rng.standard_normal((USERS, D)).astype(np.float32), item_factors=items,
        seen_indptr=np.cumsum([0] + [len(s) for s in seen]), seen_indices=np.concatenate(seen).astype(np.int32),
        item_popularity=np.round(rng.random(ITEMS), 1).astype(np.float32),  # ties in popularity too
        algorithm="test", training={"factors": D}, fold_in={"regularization": 0.1, "alpha": 1.0},
    )


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, writer.ArtifactContent]:
    root = tmp_path_factory.mktemp("contract") / "root"
    c = content()
    writer.write_version(root, "ties", c, ann_trees=5, exact_neighbours=10)
    return root, c


@pytest.fixture(scope="module")
def stub(artifact: tuple[pathlib.Path, writer.ArtifactContent]) -> Iterator[reco_pb2_grpc.RecommenderStub]:
    with running_sidecar(artifact[0], "ties", workers=2, extra_args=["--batch-wait-policy", "timer",
                                                                        "--batch-max-delay-ms", "5"]) as sc:
        yield sc.stub("ipv4:" + ",".join(sc.worker_addresses), **{"grpc.lb_policy_name": "round_robin"})


def contract_scores(user: np.ndarray, items: np.ndarray) -> np.ndarray:
    """The documented score: exact float64 products, pairwise halves summed, rounded to float32."""
    p = user.astype(np.float64)[None, :] * items.astype(np.float64)
    width = 1 << (p.shape[1] - 1).bit_length()
    p = np.concatenate([p, np.zeros((len(p), width - p.shape[1]))], axis=1)
    while p.shape[1] > 1:
        p = p[:, : p.shape[1] // 2] + p[:, p.shape[1] // 2 :]
    return p[:, 0].astype(np.float32)


def contract_order(scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """rows sorted by score descending, equal scores by row ascending."""
    return rows[np.lexsort((rows, -scores[rows].astype(np.float64)))]


def ask(stub: reco_pb2_grpc.RecommenderStub, **kw: object) -> list[tuple[str, float]]:
    resp = stub.Recommend(reco_pb2.RecommendRequest(**kw), timeout=TIMEOUT)  # type: ignore[arg-type]
    return [(it.item_id, it.score) for it in resp.items]


def expected(c: writer.ArtifactContent, user: int, k: int, include_seen: bool = False) -> list[tuple[str, float]]:
    scores = contract_scores(c.user_factors[user], c.item_factors)
    rows = np.arange(ITEMS)
    if not include_seen:
        rows = np.setdiff1d(rows, c.seen_indices[c.seen_indptr[user] : c.seen_indptr[user + 1]])
    top = contract_order(scores, rows)[:k]
    return [(c.item_ids[r], float(scores[r])) for r in top]


def test_scores_order_ties_and_exactness_as_documented(stub: reco_pb2_grpc.RecommenderStub,
                                                       artifact: tuple[pathlib.Path, writer.ArtifactContent]) -> None:
    c = artifact[1]
    tied = 0
    for u in range(0, USERS, 3):
        for include_seen in (False, True):
            want = expected(c, u, 300, include_seen)
            got = ask(stub, user_id=c.user_ids[u], n=300, filter=reco_pb2.Filter(include_seen=include_seen))
            assert got == want, f"user {u}"
            tied += sum(a[1] == b[1] for a, b in itertools.pairwise(got))
    assert tied > 100, "the model must produce equal scores for the tie rule to be tested"


def test_alone_concurrent_and_batch_agree_with_the_contract(stub: reco_pb2_grpc.RecommenderStub,
                                                            artifact: tuple[pathlib.Path, writer.ArtifactContent]
                                                            ) -> None:
    c = artifact[1]
    users = list(range(USERS))
    want = {u: expected(c, u, 200) for u in users}
    with ThreadPoolExecutor(32) as pool:
        pages = list(pool.map(lambda a: ask(stub, user_id=c.user_ids[a[0]], n=50, offset=a[1]),
                              [(u, off) for u in users for off in (0, 50, 100, 150)]))
    for i, u in enumerate(users):
        assert [it for page in pages[4 * i : 4 * i + 4] for it in page] == want[u]
    stream = stub.BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=[c.user_ids[u] for u in users], n=200),
                                 timeout=TIMEOUT)
    assert {r.user_id: [(it.item_id, it.score) for it in r.items] for r in stream} == \
        {c.user_ids[u]: want[u] for u in users}


def test_fold_in_users_rank_the_same_alone_and_concurrently(stub: reco_pb2_grpc.RecommenderStub,
                                                            artifact: tuple[pathlib.Path, writer.ArtifactContent]
                                                            ) -> None:
    c = artifact[1]
    recents = [[c.item_ids[(7 * j + i) % ITEMS] for i in range(5)] for j in range(40)]
    alone = [ask(stub, user_id="new-user", n=120, recent_item_ids=r) for r in recents]
    with ThreadPoolExecutor(32) as pool:
        pages = list(pool.map(lambda a: ask(stub, user_id="new-user", n=40, offset=a[1], recent_item_ids=recents[a[0]]),
                              [(j, off) for j in range(40) for off in (0, 40, 80)]))
    for j in range(40):
        assert [it for page in pages[3 * j : 3 * j + 3] for it in page] == alone[j]
        assert not {i for i, _ in alone[j]} & set(recents[j]), "recent items count as seen"


def test_popular_fallback_pages_concatenate(stub: reco_pb2_grpc.RecommenderStub) -> None:
    long = ask(stub, user_id="nobody", n=600)
    with ThreadPoolExecutor(16) as pool:
        pages = list(pool.map(lambda off: ask(stub, user_id="nobody", n=60, offset=off), range(0, 600, 60)))
    assert [it for page in pages for it in page] == long


def test_similar_pages_within_the_neighbour_table_concatenate(stub: reco_pb2_grpc.RecommenderStub,
                                                              artifact: tuple[pathlib.Path, writer.ArtifactContent]
                                                              ) -> None:
    c = artifact[1]

    def similar(item: str, n: int, offset: int = 0) -> list[tuple[str, float]]:
        resp = stub.Similar(reco_pb2.SimilarRequest(item_id=item, n=n, offset=offset), timeout=TIMEOUT)
        assert resp.source == reco_pb2.SOURCE_ANN
        return [(it.item_id, it.score) for it in resp.items]

    queries = c.item_ids[:200]
    long = [similar(q, 10) for q in queries]  # the table holds 10 neighbours per item
    with ThreadPoolExecutor(32) as pool:
        pages = list(pool.map(lambda a: similar(a[0], 5, a[1]), [(q, off) for q in queries for off in (0, 5)]))
    for i, q in enumerate(queries):
        assert pages[2 * i] + pages[2 * i + 1] == long[i], q
        assert all(a[1] >= b[1] for a, b in itertools.pairwise(long[i]))
