"""Solve a user's vector from the item factors, as implicit's ALS recalculates a user.

The objective (engine/objective.py) gives each of the user's items its weight in the normal
equations; YtY is precomputed once per model. The equations are solved in float64 (implicit
solves in the factors' float32: the two agree to float32 precision). A user with no items
gets the zero vector, as implicit gives them.

Two forms: compiled (`_foldin.c`, built at install when a C compiler is there: each user's
system built and solved by Cholesky in a buffer of its own, about 2 x faster for the
learner's groups) and numpy (`numpy_solve_flat`: stacked matmuls and one LU per matrix), the
fallback, the form for a user whose matrix the compiled one finds not positive definite,
and the reference it is tested against (tests/test_foldin_kernel.py: equal to float32
precision, and in practice the same float32 vector).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from reco_sidecar.common import native
from reco_sidecar.engine.objective import Objective

Kernel = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                   np.ndarray, np.ndarray], None]

# None when the install had no C compiler: the numpy form serves.
KERNEL: Kernel | None = native.kernel("reco_sidecar.engine._foldin", "solve")


def gram(item_factors: np.ndarray) -> np.ndarray:
    y = np.asarray(item_factors, dtype=np.float64)
    return y.T @ y


def solve(item_factors: np.ndarray, yty: np.ndarray, rows: np.ndarray, values: np.ndarray,
          objective: Objective) -> np.ndarray:
    """The vector of a user whose history is `values[k]` on item row `rows[k]` (rows unique)."""
    rows = np.asarray(rows, dtype=np.int64)
    vectors = solve_flat(item_factors, yty, rows, np.asarray(values, dtype=np.float64),
                         np.array([len(rows)], dtype=np.int64), objective)
    vector: np.ndarray = vectors[0]
    return vector


def solve_many(item_factors: np.ndarray, yty: np.ndarray, histories: list[tuple[np.ndarray, np.ndarray]],
               objective: Objective) -> np.ndarray:
    """`solve` for many users at once, one (rows, values) history each. Row i is the vector
    of histories[i]."""
    lengths = np.fromiter((len(r) for r, _ in histories), dtype=np.int64, count=len(histories))
    if not len(histories):
        return np.zeros((0, yty.shape[0]), dtype=np.float32)
    rows = np.concatenate([np.asarray(r, dtype=np.int64) for r, _ in histories])
    values = np.concatenate([np.asarray(v, dtype=np.float64) for _, v in histories])
    return solve_flat(item_factors, yty, rows, values, lengths, objective)


def solve_flat(item_factors: np.ndarray, yty: np.ndarray, rows: np.ndarray, values: np.ndarray,
               lengths: np.ndarray, objective: Objective) -> np.ndarray:
    """`solve` for many users whose histories are laid end to end: user i's is the next
    `lengths[i]` entries of `rows` (int64) and `values` (float64). Row i is user i's vector.
    Each user's vector is computed on its own, whoever else shares the call."""
    kernel = KERNEL
    if kernel is None or item_factors.dtype != np.float32 or not item_factors.flags.c_contiguous:
        return numpy_solve_flat(item_factors, yty, rows, values, lengths, objective)
    n = len(lengths)
    out = np.zeros((n, yty.shape[0]), dtype=np.float32)
    if not n:
        return out
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    values = np.ascontiguousarray(values, dtype=np.float64)
    lengths = np.ascontiguousarray(lengths, dtype=np.int64)
    terms = objective.terms(values)
    failed = np.zeros(n, dtype=bool)
    kernel(item_factors, np.ascontiguousarray(yty, dtype=np.float64), rows,
           np.ascontiguousarray(terms.gram, dtype=np.float64), np.ascontiguousarray(terms.rhs, dtype=np.float64),
           lengths, np.ascontiguousarray(objective.regularizations(values, lengths), dtype=np.float64), out, failed)
    if failed.any():
        # not positive definite: with unique rows and reg > 0 the matrix always is, so this is
        # reg = 0 (Spark's objective for a user with no positive value) or a value no solve takes
        # (NaN); numpy's LU answers such a user as it did before the kernel, user by user
        starts = np.cumsum(lengths) - lengths
        for u in np.flatnonzero(failed).tolist():
            part = slice(int(starts[u]), int(starts[u] + lengths[u]))
            out[u] = numpy_solve_flat(item_factors, yty, rows[part], values[part], lengths[u : u + 1], objective)[0]
    return out


def numpy_solve_flat(item_factors: np.ndarray, yty: np.ndarray, rows: np.ndarray, values: np.ndarray,
                     lengths: np.ndarray, objective: Objective) -> np.ndarray:
    """`solve_flat` in numpy: the fallback and the reference.

    Each history is padded with zero-weight entries to a length of its own (`padded_length`,
    a function of its length alone); users with the same padded length are stacked, their
    equations built by one matmul (numpy runs the same BLAS call for each matrix of a stack as
    for a lone one) and solved by one batched LAPACK call (one gesv per matrix). A padded
    entry adds exact zeros. Since the padding depends on the user's own length only, every
    user's arithmetic is the same as if it were solved alone: the vector does not depend on
    which other users share the call (`solve` is this function for one user). The padding is
    what keeps a group cheap: a group of 100 users has some 40 distinct history lengths but
    a handful of padded ones, and each stack costs a dozen numpy calls whatever its size."""
    k = yty.shape[0]
    n = len(lengths)
    out = np.zeros((n, k), dtype=np.float32)
    if not n or not int(lengths.max()):
        return out
    starts = np.cumsum(lengths) - lengths
    terms = objective.terms(values)
    regularization = objective.regularizations(values, lengths)
    eye = np.eye(k)
    at = np.flatnonzero(lengths)
    a = np.empty((len(at), k, k))
    b = np.empty((len(at), k, 1))
    padded = padded_length(lengths[at])
    for length in np.unique(padded):
        members = np.flatnonzero(padded == length)  # their places in a and b
        users = at[members]
        place = np.arange(length)
        real = place < lengths[users][:, None]  # (m, length): False on the padding
        take = np.where(real, starts[users][:, None] + place, 0)  # (m, length) into the flat arrays
        y = np.asarray(item_factors[rows[take]], dtype=np.float64)  # (m, length, k)
        gram = np.where(real, terms.gram[take], 0.0)
        rhs = np.where(real, terms.rhs[take], 0.0)
        weighted = y.transpose(0, 2, 1) * gram[:, None, :]  # (m, k, length)
        a[members] = (yty + regularization[users][:, None, None] * eye) + weighted @ y
        b[members] = (rhs[:, None, :] @ y).transpose(0, 2, 1)
    out[at] = np.linalg.solve(a, b)[:, :, 0].astype(np.float32)
    return out


def padded_length(lengths: np.ndarray) -> np.ndarray:
    """The length each history is padded to: a multiple of 8 up to 64 entries, then of an
    eighth of the power of two at or above it (16 up to 128, 32 up to 256, ...): at most 7
    entries more up to 64, at most a quarter more beyond, and a few distinct sizes in any
    group."""
    lengths = np.asarray(lengths, dtype=np.int64)
    bits = np.floor(np.log2(np.maximum(lengths - 1, 1))).astype(np.int64) + 1  # bit length of length - 1
    step = np.maximum(8, 2 ** np.maximum(bits - 3, 0))
    out: np.ndarray = -(-lengths // step) * step
    return out


def solve_user(
    item_factors: np.ndarray,
    yty: np.ndarray,
    rows: np.ndarray,
    *,
    regularization: float,
    alpha: float,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """`solve` under implicit's objective with these parameters; each item's value is 1 unless
    `weights` gives it. Prefer Model.solve, which uses the version's recorded objective."""
    values = np.ones(len(rows)) if weights is None else np.asarray(weights, dtype=np.float64)
    return solve(item_factors, yty, rows, values, Objective(alpha=alpha, regularization=regularization))
