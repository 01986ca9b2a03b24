"""Reasons for a user updated online (docs/online.md) through a real 2-worker sidecar: they
explain the vector the learner solved, so they are implicit's explain() on the user's updated
user_items row (the trained values plus the values of their events, summed per item), on
every worker."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares

from harness.sidecar import running_sidecar
from reco_sidecar.artifact.loader import open_model
from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.models import ONLINE_TYPES, PARAMS, online_copy

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def online_root(demo_root: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return online_copy(demo_root, tmp_path_factory.mktemp("online-reasons") / "root")


def test_an_online_users_reasons_are_implicits_explain_on_the_updated_row(
        online_root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    model = open_model(online_root / "demo" / "1")
    als = AlternatingLeastSquares(factors=PARAMS.factors, regularization=PARAMS.regularization, alpha=PARAMS.alpha)
    als.user_factors = np.asarray(model.user_factors, dtype=np.float32)
    als.item_factors = np.asarray(model.item_factors, dtype=np.float32)
    user_id = sorted(model.users.ids)[11]
    user = model.users.row(user_id)
    assert user is not None
    trained_rows, trained_values = model.history(user)
    unseen = [model.items.ids[r] for r in range(len(model.items)) if r not in set(trained_rows.tolist())]
    again = model.items.ids[int(trained_rows[0])]  # a trained item: its online value adds to the trained one
    # (type, weight or 0 for none, item); a second like on the same item sums with the first.
    sent = [("like", 3.0, unseen[0]), ("share", 0.0, unseen[1]), ("like", 0.0, again), ("click", 2.0, unseen[0])]
    row = dict(zip(trained_rows.tolist(), trained_values.tolist(), strict=True))
    for kind, weight, item in sent:
        r = model.items.row(item)
        assert r is not None
        row[r] = row.get(r, 0.0) + ONLINE_TYPES[kind] * (weight or 1.0)
    rows = np.array(sorted(row), dtype=np.int64)
    m = sp.lil_matrix((user + 1, len(model.items)), dtype=np.float32)
    m[user, rows] = [row[r] for r in rows.tolist()]
    updated = m.tocsr()

    with running_sidecar(online_root, "demo", workers=2,
                         extra_args=["--online-dir", str(tmp_path / "online")]) as sc:
        events = [reco_pb2.FeedbackEvent(event_id=f"e{i}", user_id=user_id, item_id=item, type=kind, weight=weight)
                  for i, (kind, weight, item) in enumerate(sent)]
        assert sc.stub().Feedback(reco_pb2.FeedbackRequest(events=events), timeout=30).accepted == len(sent)
        online_reasons: set[str] = set()
        for address in sc.worker_addresses:
            resp = sc.stub(address).Recommend(reco_pb2.RecommendRequest(user_id=user_id, n=10, explain=4),
                                              timeout=10)
            assert resp.source == reco_pb2.SOURCE_ONLINE and len(resp.items) == 10
            for item in resp.items:
                total, top, _ = als.explain(user, updated, model.items.row(item.item_id), N=4)
                assert [r.item_id for r in item.reasons] == [model.items.ids[i] for i, _ in top]
                assert [r.contribution for r in item.reasons] == pytest.approx([s for _, s in top], rel=1e-4,
                                                                                abs=1e-6)
                assert [r.share for r in item.reasons] == pytest.approx([s / total for _, s in top], rel=1e-3,
                                                                         abs=1e-5)
                # The learner solved this very row: explain()'s total is the served score.
                assert total == pytest.approx(item.score, rel=1e-3, abs=1e-4)
                online_reasons |= {r.item_id for r in item.reasons} & {unseen[0], unseen[1]}
        assert online_reasons  # the online items explain some of the list, with their summed values
