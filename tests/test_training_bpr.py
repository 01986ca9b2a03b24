import numpy as np
import scipy.sparse as sp

from reco_sidecar.engine.objective import Objective
from reco_sidecar.training import algorithms, bpr


def _matrix() -> sp.csr_matrix:
    rng = np.random.default_rng(1)
    return sp.random(60, 90, density=0.1, format="csr", dtype=np.float32, random_state=rng)


def test_bpr_rows_carry_the_bias_column() -> None:
    users, items = bpr.train(_matrix(), bpr.BprParams(factors=8, iterations=5, seed=3))
    assert users.shape == (60, 9) and items.shape == (90, 9)
    assert users.dtype == items.dtype == np.float32
    assert np.all(users[:, -1] == 1.0)
    assert np.any(items[:, -1] != 0.0)


def test_implicit_scores_bpr_by_the_plain_dot_product_of_the_stored_rows() -> None:
    # What the artifact relies on: serving u . i reproduces implicit's own BPR ranking scores.
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    m = _matrix()
    model = BayesianPersonalizedRanking(factors=8, iterations=5, random_state=3)
    model.fit(m, show_progress=False)
    ids, scores = model.recommend(0, m[0], N=5)
    np.testing.assert_allclose((model.user_factors[0] @ model.item_factors.T)[ids], scores, rtol=1e-5)


def test_algorithms_dispatch_on_params() -> None:
    m = _matrix()
    params = bpr.BprParams(factors=4, iterations=2)
    assert algorithms.name(params) == "bpr"
    users, items = algorithms.fit(m, params)
    assert users.shape[1] == items.shape[1] == 5
    assert algorithms.fold_in(params)["alpha"] == 1.0


def test_bpr_learns_from_positive_pairs_only_and_records_the_ridge_objective() -> None:
    m = sp.csr_matrix(np.array([[0.7, -0.3, 0.0, 1.0], [-1.0, 0.1, 0.4, 0.0]], dtype=np.float32))
    assert bpr.liked(m).toarray().tolist() == [[np.float32(0.7), 0.0, 0.0, 1.0], [0.0, np.float32(0.1),
                                                                             np.float32(0.4), 0.0]]
    assert bpr.liked(m).nnz == 4 and m.nnz == 6  # the input is left alone
    assert algorithms.objective(bpr.BprParams()) == Objective("implicit", alpha=1.0, regularization=0.1)
