"""reco_sidecar.engine.topk.select against a stable argsort of the negated scores."""

from __future__ import annotations

import numpy as np
import pytest

from reco_sidecar.engine import topk


def brute(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


def check(scores: np.ndarray, k: int) -> None:
    rows, vals = topk.select(scores, k)
    want_rows, want_vals = brute(scores, k)
    assert rows.tolist() == want_rows.tolist()
    assert vals.dtype == scores.dtype
    # bit for bit, so -0.0 stays -0.0
    np.testing.assert_array_equal(vals.view(np.uint8), want_vals.view(np.uint8))


def random_scores(rng: np.random.Generator, b: int, n: int, dtype: type = np.float32) -> np.ndarray:
    kind = rng.integers(0, 4)
    if kind == 0:
        scores = rng.standard_normal((b, n))
    elif kind == 1:  # few distinct values: ties everywhere
        scores = rng.integers(-3, 4, (b, n)).astype(np.float64)
    elif kind == 2:  # spread magnitudes, zeros of both signs
        scores = rng.standard_normal((b, n)) * 10.0 ** rng.integers(-30, 30, (b, n))
        scores[rng.random((b, n)) < 0.1] = 0.0
        scores[rng.random((b, n)) < 0.1] = -0.0
    else:
        scores = rng.random((b, n))
    scores = scores.astype(dtype)
    # excluded items
    scores[rng.random((b, n)) < rng.random()] = -np.inf
    return scores


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_stable_argsort(dtype: type) -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        b, n = int(rng.choice([1, 2, 5, 33])), int(rng.integers(1, 3000))
        check(random_scores(rng, b, n, dtype), int(rng.integers(1, n + 10)))


def test_large_rows_and_small_k() -> None:
    rng = np.random.default_rng(1)
    scores = rng.standard_normal((4, 100_000)).astype(np.float32)
    scores[:, rng.integers(0, 100_000, 500)] = scores[0, 7]  # ties at some value
    for k in (1, 10, 100, 1000):
        check(scores, k)


def test_all_masked_and_mostly_masked_rows() -> None:
    scores = np.full((3, 10_000), -np.inf, dtype=np.float32)
    scores[1, [5, 9000, 7]] = [1.0, 2.0, 1.0]
    scores[2] = 0.0
    check(scores, 20)
    rows, vals = topk.select(scores, 20)
    assert rows[1, :3].tolist() == [9000, 5, 7] and np.isneginf(vals[1, 3:]).all()
    assert rows[2].tolist() == list(range(20))


def test_nan_rows_sort_nan_last() -> None:
    scores = np.array([[np.nan, 1.0, 2.0, np.nan, 0.5] * 200], dtype=np.float32)
    rows, _ = topk.select(scores, 5)
    assert rows.tolist() == brute(scores, 5)[0].tolist()


def test_empty_inputs() -> None:
    assert topk.select(np.zeros((0, 5), np.float32), 3)[0].shape == (0, 0)
    assert topk.select(np.zeros((2, 5), np.float32), 0)[0].shape == (2, 0)
    assert topk.select(np.zeros((2, 0), np.float32), 3)[0].shape == (2, 0)


def test_sort_keys_order_like_negated_score_then_row() -> None:
    rng = np.random.default_rng(2)
    vals = np.concatenate([rng.standard_normal(500), [0.0, -0.0, np.inf, -np.inf, 1e-40, -1e-40]])
    vals = vals.astype(np.float32)
    rows = rng.permutation(len(vals)).astype(np.int64)
    order = np.argsort(topk.sort_keys(vals, rows))
    want = np.lexsort((rows, -vals))
    assert order.tolist() == want.tolist()
    back_rows, back_vals = topk.decode_keys(topk.sort_keys(vals, rows))
    assert back_rows.tolist() == rows.tolist()
    np.testing.assert_array_equal(back_vals, vals)
