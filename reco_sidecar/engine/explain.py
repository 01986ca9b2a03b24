"""Why an item is recommended: each history item's share of its score, as implicit's ALS
`explain()` computes it (Hu, Koren, Volinsky 2008, section 5).

The user's vector solves (YtY + reg I + sum_j (c_j - 1) y_j y_j^T) x = sum_j c_j y_j, so the
score of item i is x . y_i = sum_j c_j (y_i^T W y_j) with W the inverse of that matrix: one term
per history item j. The matrix depends only on the user's items and confidences, never on the
stored user vector, so the same computation explains a stored user, a folded-in one and one
solved online from the items supplied. Pure: arrays in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg


@dataclass(frozen=True)
class Explanation:
    """Per target item (rows of each array): the total explained score and the k largest
    contributions, largest first, with the history item rows they come from (-1 pads)."""

    totals: np.ndarray  # (targets,)
    rows: np.ndarray  # (targets, k) item rows of the user's history
    contributions: np.ndarray  # (targets, k)


def explain(item_factors: np.ndarray, yty: np.ndarray, history_rows: np.ndarray, confidences: np.ndarray,
            regularization: float, targets: np.ndarray, k: int) -> Explanation:
    """`confidences` are c_j as implicit uses them (alpha times the interaction weight).

    Ties order as implicit's heap does: the larger history row first. Items with a negative
    confidence (implicit's "disliked") add to the matrix with |c| and explain nothing.
    """
    rows = np.asarray(history_rows, dtype=np.int64)
    c = np.asarray(confidences, dtype=np.float64)
    t = np.asarray(targets, dtype=np.int64)
    y = np.asarray(item_factors[rows], dtype=np.float64)
    a = np.asarray(yty, dtype=np.float64) + regularization * np.eye(yty.shape[0])
    a += (y.T * (np.abs(c) - 1.0)) @ y
    # One LAPACK call (Cholesky factorisation and solve, as implicit's cho_factor/cho_solve):
    # scipy's wrappers and finiteness checks cost more than the 64 x 64 solve itself.
    _, weighted, info = scipy.linalg.lapack.dposv(a, np.asarray(item_factors[t], dtype=np.float64).T)
    if info != 0:
        raise np.linalg.LinAlgError(f"the user's matrix is not positive definite (LAPACK info {info})")
    liked = c >= 0
    contrib = (y[liked] @ weighted) * c[liked, None]  # (history, targets)
    rows = rows[liked]
    totals = contrib.sum(axis=0)
    width = min(k, len(rows))
    out_rows = np.full((len(t), k), -1, dtype=np.int64)
    out_vals = np.zeros((len(t), k), dtype=np.float64)
    if width:
        # Descending by (contribution, row), as popping implicit's min-heap of (score, item)
        # reversed: a stable sort of the history in descending row order puts ties larger row first.
        by_row = np.argsort(-rows, kind="stable")
        order = by_row[np.argsort(-contrib[by_row], axis=0, kind="stable")[:width]]
        out_rows[:, :width] = rows[order].T
        out_vals[:, :width] = np.take_along_axis(contrib, order, axis=0).T
    return Explanation(totals, out_rows, out_vals)
