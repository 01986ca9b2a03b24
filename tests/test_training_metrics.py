import math

import numpy as np
import pytest
import scipy.sparse as sp

from reco_sidecar.training.metrics import hits, ranking_metrics


def _test_matrix(items_per_user: list[list[int]], n_items: int = 10) -> sp.csr_matrix:
    rows = [u for u, items in enumerate(items_per_user) for _ in items]
    cols = [i for items in items_per_user for i in items]
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(items_per_user), n_items))


def test_hits_marks_recommended_test_items_and_never_padding() -> None:
    test = _test_matrix([[1, 4], [], [0]])
    rec = np.array([[4, 2, 1], [1, 4, 0], [-1, 0, -1]])
    assert hits(rec, np.array([0, 1, 2]), test).tolist() == [
        [True, False, True], [False, False, False], [False, True, False]]


def test_metrics_match_hand_computation() -> None:
    test = _test_matrix([[1, 4, 7], [2]])
    rec = np.array([[4, 2, 1], [0, 3, 2]])
    m = ranking_metrics(rec, np.array([0, 1]), test, k=3)
    d = [1 / math.log2(r + 2) for r in range(3)]
    assert m["precision"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert m["recall"] == pytest.approx((2 / 3 + 1 / 1) / 2)
    assert m["ndcg"] == pytest.approx(((d[0] + d[2]) / sum(d) + d[2] / d[0]) / 2)
    assert m["coverage"] == pytest.approx(5 / 10)


def test_perfect_ranking_scores_one() -> None:
    test = _test_matrix([[3, 5]])
    m = ranking_metrics(np.array([[5, 3, 0]]), np.array([0]), test, k=3)
    assert m["ndcg"] == pytest.approx(1.0)
    assert m["recall"] == pytest.approx(1.0)


def test_metrics_use_only_the_users_asked_for() -> None:
    test = _test_matrix([[], [1], [2]])
    m = ranking_metrics(np.array([[1], [9]]), np.array([1, 2]), test, k=1)
    assert m["precision"] == pytest.approx(0.5)
