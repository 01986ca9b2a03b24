"""Solve a user's vector from the item factors, as implicit's ALS recalculates a user.

The objective (engine/objective.py) gives each of the user's items its weight in the normal
equations; YtY is precomputed once per model. The equations are solved in float64 (implicit
solves in the factors' float32: the two agree to float32 precision). A user with no items
gets the zero vector, as implicit gives them.
"""

from __future__ import annotations

import numpy as np

from reco_sidecar.engine.objective import Objective


def gram(item_factors: np.ndarray) -> np.ndarray:
    y = np.asarray(item_factors, dtype=np.float64)
    return y.T @ y


def solve(item_factors: np.ndarray, yty: np.ndarray, rows: np.ndarray, values: np.ndarray,
          objective: Objective) -> np.ndarray:
    """The vector of a user whose history is `values[k]` on item row `rows[k]` (rows unique)."""
    rows = np.asarray(rows, dtype=np.int64)
    if not len(rows):
        return np.zeros(yty.shape[0], dtype=np.float32)
    t = objective.terms(values)
    y = np.asarray(item_factors[rows], dtype=np.float64)
    a = yty + t.regularization * np.eye(yty.shape[0]) + (y.T * t.gram) @ y
    b = t.rhs @ y
    return np.linalg.solve(a, b).astype(np.float32)


def solve_many(item_factors: np.ndarray, yty: np.ndarray, histories: list[tuple[np.ndarray, np.ndarray]],
               objective: Objective) -> np.ndarray:
    """`solve` for many users at once, one (rows, values) history each: the same equations,
    solved by one batched LAPACK call (the online learner solves every user of a group of
    events together). Row i is the vector of histories[i]."""
    k = yty.shape[0]
    out = np.zeros((len(histories), k), dtype=np.float32)
    at = [i for i, (rows, _) in enumerate(histories) if len(rows)]
    if not at:
        return out
    a = np.empty((len(at), k, k))
    b = np.empty((len(at), k, 1))
    base = yty + objective.regularization * np.eye(k)
    for j, i in enumerate(at):
        rows, values = histories[i]
        t = objective.terms(values)
        y = np.asarray(item_factors[np.asarray(rows, dtype=np.int64)], dtype=np.float64)
        a[j] = base + (y.T * t.gram) @ y
        b[j, :, 0] = t.rhs @ y
    out[at] = np.linalg.solve(a, b)[:, :, 0].astype(np.float32)
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
