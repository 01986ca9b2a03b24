
import pathlib

import pytest

from reco_sidecar.artifact import loader
from reco_sidecar.artifact import manifest as manifest_mod
from reco_sidecar.engine.query import RecQuery, Restriction
from reco_sidecar.training import als, bpr, demo_data, pipeline
from reco_sidecar.training.interactions import Builder, Interactions

SPEC = demo_data.DemoSpec(users=700, items=300, interactions=20_000, clusters=5, seed=21)
ALS = als.AlsParams(factors=16, iterations=8, regularization=1.0, alpha=10.0)


@pytest.fixture(scope="module")
def data() -> Interactions:
    users, items, w, _, _ = demo_data.generate(SPEC)
    b = Builder()
    b.add_arrays([demo_data.user_id(u) for u in users], [demo_data.item_id(i) for i in items], w)
    return b.build()


@pytest.mark.parametrize("params", [ALS, bpr.BprParams(factors=16, iterations=60)], ids=["als", "bpr"])
def test_metrics_land_in_the_manifest_and_beat_the_baseline(data: Interactions, tmp_path: pathlib.Path,
                                                            params: als.AlsParams | bpr.BprParams) -> None:
    published = pipeline.train_and_publish(data, tmp_path, "m", params, evaluation=pipeline.Evaluation(0.2, k=10))
    man = manifest_mod.read(published.path)
    assert man.metrics == pytest.approx(published.metrics)
    for name in ("precision", "recall", "ndcg", "coverage"):
        assert 0.0 <= man.metrics[f"{name}_at_10"] <= 1.0
        assert 0.0 <= man.metrics[f"baseline_{name}_at_10"] <= 1.0
    assert man.metrics["ndcg_at_10"] > man.metrics["baseline_ndcg_at_10"]
    assert man.metrics["recall_at_10"] > man.metrics["baseline_recall_at_10"]
    assert man.algorithm == ("als" if params is ALS else "bpr")
    assert man.training["evaluation"]["holdout"] == 0.2


def test_published_model_is_trained_on_all_the_data(data: Interactions, tmp_path: pathlib.Path) -> None:
    published = pipeline.train_and_publish(data, tmp_path, "m", ALS, evaluation=pipeline.Evaluation(0.3))
    man = manifest_mod.read(published.path)
    assert man.seen_count == data.matrix.nnz
    assert man.user_count == len(data.user_ids) and man.item_count == len(data.item_ids)
    assert man.training["pairs"] == data.matrix.nnz


def test_bpr_artifact_serves_with_its_bias_column(data: Interactions, tmp_path: pathlib.Path) -> None:
    published = pipeline.train_and_publish(data, tmp_path, "m", bpr.BprParams(factors=8, iterations=20))
    model = loader.open_model(published.path)
    assert model.factors == 9
    ranked = model.recommend([RecQuery(0, 10, Restriction.none(), user_row=0)])[0]
    expected = model.user_factors[0] @ model.item_factors.T
    assert ranked.scores.tolist() == pytest.approx(expected[ranked.rows].tolist(), rel=1e-5)


def test_no_evaluation_means_no_metrics_and_train_als_still_works(data: Interactions, tmp_path: pathlib.Path) -> None:
    path = pipeline.train_als(data, tmp_path, "m", ALS, source={"kind": "test"})
    man = manifest_mod.read(path)
    assert man.metrics == {}
    assert man.algorithm == "als"
    assert man.source == {"kind": "test"}
    assert man.fold_in == {"regularization": ALS.regularization, "alpha": ALS.alpha}
    assert path.name == "1"
    assert pipeline.train_and_publish(data, tmp_path, "m", ALS).version == 2
