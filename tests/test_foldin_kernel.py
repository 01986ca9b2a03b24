"""The user solve's two forms (engine/foldin.py): the compiled one (Cholesky) gives the numpy
one's (LU) vectors to float32 precision, under both objectives, for users with and without
items; each user's vector is the same whoever shares the call; a user whose matrix it cannot
factor is solved by the numpy form; it refuses arrays it cannot read, naming them; and CI
fails, rather than skips, when the install did not build it. That the vectors equal
implicit's own recalculation is tests/test_online_solve.py's, through this same function."""

from __future__ import annotations

import numpy as np
import pytest

from reco_sidecar.engine import foldin
from reco_sidecar.engine.objective import IMPLICIT, SPARK, Objective
from tests.support.requires import require

WHAT = "the compiled user solve (a C compiler at install)"


def _histories(rng: np.random.Generator, users: int, items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lengths = rng.integers(0, 60, users)
    lengths[:3] = (0, 1, items)  # no item, one item, every item
    rows = np.concatenate([np.sort(rng.choice(items, n, replace=False)) for n in lengths]).astype(np.int64)
    # implicit's values, negative ones (skip, hide) and tiny ones (c - 1 < 0) among them
    values = rng.choice([1.0, 0.1, 0.3, 0.7, -0.5, -1.0, 0.001, 2.5], len(rows))
    return rows, values, lengths.astype(np.int64)


@pytest.mark.parametrize("form", [IMPLICIT, SPARK])
@pytest.mark.parametrize("k", [1, 8, 32, 64, 65])
def test_the_compiled_solve_gives_the_numpy_solves_vectors(form: str, k: int) -> None:
    require(foldin.KERNEL is not None, WHAT)
    rng = np.random.default_rng(k)
    items = (rng.standard_normal((300, k)) * rng.uniform(0.01, 1.0, (300, 1))).astype(np.float32)
    yty = foldin.gram(items)
    rows, values, lengths = _histories(rng, 120, len(items))
    for objective in (Objective(form, alpha=20.0, regularization=0.05), Objective(form, alpha=1.0, regularization=1.0)):
        compiled = foldin.solve_flat(items, yty, rows, values, lengths, objective)
        reference = foldin.numpy_solve_flat(items, yty, rows, values, lengths, objective)
        assert compiled.dtype == np.float32 and compiled.shape == (len(lengths), k)
        assert not compiled[0].any()  # no item: the zero vector, as implicit gives
        scale = float(np.abs(reference).max())
        np.testing.assert_allclose(compiled, reference, rtol=1e-5, atol=1e-6 * scale)


def test_a_users_vector_does_not_depend_on_who_shares_the_call() -> None:
    require(foldin.KERNEL is not None, WHAT)
    rng = np.random.default_rng(3)
    items = rng.standard_normal((200, 16)).astype(np.float32)
    yty = foldin.gram(items)
    rows, values, lengths = _histories(rng, 40, len(items))
    objective = Objective(IMPLICIT, alpha=5.0, regularization=0.1)
    together = foldin.solve_flat(items, yty, rows, values, lengths, objective)
    starts = np.cumsum(lengths) - lengths
    for u in range(len(lengths)):
        part = slice(int(starts[u]), int(starts[u] + lengths[u]))
        alone = foldin.solve(items, yty, rows[part], values[part], objective)
        assert alone.tobytes() == together[u].tobytes(), u


def test_a_matrix_the_kernel_cannot_factor_is_solved_by_numpys_lu() -> None:
    require(foldin.KERNEL is not None, WHAT)
    from reco_sidecar.engine import _foldin

    rng = np.random.default_rng(4)
    items = rng.standard_normal((50, 8)).astype(np.float32)
    yty = foldin.gram(items)
    rows = np.arange(10, dtype=np.int64)
    lengths = np.array([5, 5], dtype=np.int64)
    out, failed = np.zeros((2, 8), np.float32), np.zeros(2, bool)
    gram = np.array([1.0] * 5 + [-1e6] * 5)  # the second user's matrix is far from positive definite
    _foldin.solve(items, yty, rows, gram, np.ones(10), lengths, np.full(2, 0.1), out, failed)
    assert failed.tolist() == [False, True]
    # through foldin.py, a NaN value makes a matrix no Cholesky accepts: that user gets
    # numpy's answer, the others are untouched
    values = rng.uniform(0.5, 2.0, 10)
    values[7] = np.nan
    objective = Objective(IMPLICIT, alpha=2.0, regularization=0.1)
    got = foldin.solve_flat(items, yty, rows, values, lengths, objective)
    want = foldin.numpy_solve_flat(items, yty, rows, values, lengths, objective)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)


def test_the_compiled_solve_refuses_what_it_cannot_read() -> None:
    require(foldin.KERNEL is not None, WHAT)
    from reco_sidecar.engine import _foldin

    items = np.ones((3, 2), np.float32)
    yty = foldin.gram(items)
    rows, ones = np.array([0, 2], np.int64), np.ones(2)
    lengths, reg = np.array([2], np.int64), np.full(1, 0.1)
    out, failed = np.zeros((1, 2), np.float32), np.zeros(1, bool)
    _foldin.solve(items, yty, rows, ones, ones, lengths, reg, out, failed)
    assert not failed[0] and np.isfinite(out).all()
    with pytest.raises(TypeError, match="item_factors"):
        _foldin.solve(items.astype(np.float64), yty, rows, ones, ones, lengths, reg, out, failed)
    with pytest.raises(TypeError, match="rows"):
        _foldin.solve(items, yty, rows.astype(np.int32), ones, ones, lengths, reg, out, failed)
    with pytest.raises(ValueError, match="add up"):
        _foldin.solve(items, yty, rows, ones, ones, np.array([3], np.int64), reg, out, failed)
    with pytest.raises(IndexError, match="outside"):
        _foldin.solve(items, yty, np.array([0, 3], np.int64), ones, ones, lengths, reg, out, failed)
    with pytest.raises(ValueError, match="k x k"):
        _foldin.solve(items, np.eye(3), rows, ones, ones, lengths, reg, out, failed)
    # other dtypes take the numpy form, with the same contract
    objective = Objective(IMPLICIT, alpha=1.0, regularization=0.1)
    np.testing.assert_allclose(foldin.solve_flat(items.astype(np.float64), yty, rows, ones, lengths, objective),
                               foldin.solve_flat(items, yty, rows, ones, lengths, objective), rtol=1e-6)
