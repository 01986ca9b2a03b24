"""Imported models recommend exactly what LibRecommender's own recommend_user did: the same
10 items in the same order for every user, in-process and through the real server."""

import json
import pathlib

import numpy as np
import pytest

from reco_sidecar import cli
from reco_sidecar.artifact import loader
from reco_sidecar.common import logs
from reco_sidecar.engine.query import RecQuery, Restriction
from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.server import running_sidecar

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "librecommender"
EXPECTED = json.loads((FIXTURES / "expected_recommend_user_n10.json").read_text())
CASES = {
    "als-npz": (["--path", str(FIXTURES / "als_model_save"), "--model-name", "als"], "als"),
    "als-save-embed": (["--save-embed", str(FIXTURES / "als_save_embed")], "als"),
    "bpr-tf-variables": (["--path", str(FIXTURES / "bpr_model_save"), "--model-name", "bpr"], "bpr"),
}


@pytest.fixture(scope="module")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("imported")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(logs, "configure", lambda *args, **kwargs: None)
        for name, (args, _) in CASES.items():
            assert cli.main(["import-librecommender", "--model-root", str(root), "--name", name, *args]) == 0
    return root


@pytest.mark.parametrize("case", CASES)
def test_every_users_top10_matches_librecommender_in_process(model_root: pathlib.Path, case: str) -> None:
    expected = EXPECTED[CASES[case][1]]
    model = loader.open_model(model_root / case / "1")
    users = sorted(expected)
    assert sorted(model.users.ids) == users
    ranked = model.recommend([RecQuery(0, 10, Restriction.none(), user_row=model.users.row(u)) for u in users])
    got = {u: [model.items.ids[r] for r in rk.rows.tolist()] for u, rk in zip(users, ranked, strict=True)}
    assert got == {u: expected[u] for u in users}


@pytest.mark.parametrize("case", CASES)
def test_float32_ranking_agrees_with_float64(model_root: pathlib.Path, case: str) -> None:
    # Guards the comparison above against luck: no top-10 here hangs on float32 rounding.
    model = loader.open_model(model_root / case / "1")
    users64 = np.asarray(model.user_factors, dtype=np.float64)
    items64 = np.asarray(model.item_factors, dtype=np.float64)
    for row in range(len(model.users)):
        scores = users64[row] @ items64.T
        scores[model.seen_rows(row)] = -np.inf
        top = np.argsort(-scores, kind="stable")[:10]
        ranked = model.recommend([RecQuery(0, 10, Restriction.none(), user_row=row)])[0]
        assert ranked.rows.tolist() == top.tolist()


def test_unknown_users_get_librecommenders_default_recs_first(model_root: pathlib.Path) -> None:
    model = loader.open_model(model_root / "als-npz" / "1")
    default = np.load(FIXTURES / "als_model_save" / "als_default_recs.npz")["default_recs"]
    assert model.popular(0, 10, Restriction.none()).rows.tolist() == default[:10].tolist()
    cold = np.load(model_root / "als-npz" / "1" / "cold_start_vector.npy")
    assert cold.shape == (16,) and cold.dtype == np.float32


@pytest.mark.parametrize("case", CASES)
def test_every_users_top10_matches_librecommender_through_the_server(model_root: pathlib.Path, case: str) -> None:
    expected = EXPECTED[CASES[case][1]]
    users = sorted(expected)
    with running_sidecar(model_root, case, workers=1) as sidecar:
        stub = sidecar.stub()
        stream = stub.BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=users, n=10), timeout=30)
        got = {r.user_id: [item.item_id for item in r.items] for r in stream}
        single = stub.Recommend(reco_pb2.RecommendRequest(user_id=users[0], n=10), timeout=10)
    assert got == {u: expected[u] for u in users}
    assert [i.item_id for i in single.items] == expected[users[0]]
    assert single.source == reco_pb2.SOURCE_MODEL
