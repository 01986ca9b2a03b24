import numpy as np
import pytest
import scipy.sparse as sp

from reco_sidecar.common.errors import InvalidArgument
from reco_sidecar.training.split import holdout


def _matrix(counts: list[int], n_items: int = 50, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for u, c in enumerate(counts):
        cols.extend(rng.choice(n_items, size=c, replace=False).tolist())
        rows.extend([u] * c)
    return sp.csr_matrix((np.arange(1, len(rows) + 1, dtype=np.float32), (rows, cols)), shape=(len(counts), n_items))


def test_train_and_test_partition_the_data_with_values_kept() -> None:
    m = _matrix([10, 20, 7, 3, 0, 15])
    s = holdout(m, 0.2, seed=3)
    assert s.train.shape == s.test.shape == m.shape
    assert s.train.multiply(s.test).nnz == 0
    assert abs(s.train + s.test - m).max() == 0


def test_each_eligible_user_loses_a_fraction_but_keeps_training_items() -> None:
    m = _matrix([10, 20, 5, 4, 1])
    s = holdout(m, 0.2, seed=3, min_items=5)
    held = np.diff(s.test.indptr)
    assert held.tolist() == [2, 4, 1, 0, 0]
    assert (np.diff(s.train.indptr) > 0).all()
    assert s.test_users.tolist() == [0, 1, 2]


def test_split_is_deterministic_per_seed_and_differs_between_seeds() -> None:
    m = _matrix([30] * 20)
    a, b, c = holdout(m, 0.3, seed=1), holdout(m, 0.3, seed=1), holdout(m, 0.3, seed=2)
    assert (a.test != b.test).nnz == 0
    assert (a.test != c.test).nnz > 0


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_fraction_must_be_strictly_between_zero_and_one(fraction: float) -> None:
    with pytest.raises(InvalidArgument):
        holdout(_matrix([10]), fraction)
