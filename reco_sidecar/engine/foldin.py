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
