"""Solve a user's vector from item factors, as implicit's ALS recalculates a user.

Minimises sum_i c_i (1 - x.y_i)^2 + reg |x|^2 over the given items (and 0 elsewhere),
whose normal equations are (YtY + reg I + sum_i (c_i - 1) y_i y_i^T) x = sum_i c_i y_i.
YtY is precomputed once per model.
"""

from __future__ import annotations

import numpy as np


def gram(item_factors: np.ndarray) -> np.ndarray:
    y = np.asarray(item_factors, dtype=np.float64)
    return y.T @ y


def solve_user(
    item_factors: np.ndarray,
    yty: np.ndarray,
    rows: np.ndarray,
    *,
    regularization: float,
    alpha: float,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    y = np.asarray(item_factors[rows], dtype=np.float64)
    w = np.ones(len(rows)) if weights is None else np.asarray(weights, dtype=np.float64)
    c = np.maximum(alpha * w, 1e-6)
    a = yty + regularization * np.eye(yty.shape[0]) + (y.T * (c - 1.0)) @ y
    b = (y * c[:, None]).sum(axis=0)
    return np.linalg.solve(a, b).astype(np.float32)
