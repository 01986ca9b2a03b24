"""Reasons for a user's recommended items, from the user's history (engine/explain.py).

Whose history: an online user's (docs/online.md) is the one the learner solved their vector
from: the trained row's values plus the online values summed per item (online/solve.py's
merge, on the sums the learner's table carries); a folded-in user's is the items the request
supplied, each valued 1 (as fold-in solves); a stored user's is Model.history, the artifact's seen items with their
interaction values when the artifact carries them (else 1 each, exact for models trained on
unit values). Confidence and regularisation come from the version's objective, the one
training and every serving-time solve use. For BPR and imported models the reasons explain
that objective's solution for the history, an ALS-style reading of factors not fitted to that
loss (docs/ranking.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reco_sidecar.engine.explain import explain
from reco_sidecar.engine.model import Model
from reco_sidecar.engine.query import RecQuery
from reco_sidecar.online.solve import merge

MAX_REASONS = 20


@dataclass(frozen=True)
class Reason:
    row: int
    contribution: float
    share: float


def history(model: Model, query: RecQuery) -> tuple[np.ndarray, np.ndarray]:
    """(item rows, confidences) the query's user vector is explained by, from the version's
    objective (the one training and every serving-time solve use): each item weighs the matrix
    by its confidence c and explains c x p of the score; an item with preference p = 0 (a
    negative value) carries -c: it weighs the matrix and explains nothing, as in implicit."""
    if query.online_sums is not None:
        trained_rows, trained_values = (model.history(query.user_row) if query.user_row is not None
                                        else (np.zeros(0, np.int64), np.zeros(0)))
        rows, values = merge(trained_rows, trained_values, query.online_sums[0], query.online_sums[1])
    elif query.vector is not None and query.seen_rows is not None:
        rows = np.unique(np.asarray(query.seen_rows, dtype=np.int64))
        values = np.ones(len(rows))  # fold-in values each recent item 1
    elif query.user_row is None:
        return np.zeros(0, np.int64), np.zeros(0)
    else:
        rows, values = model.history(query.user_row)
    terms = model.info.objective.terms(np.asarray(values, dtype=np.float64))
    confidence = terms.gram + 1.0
    return np.asarray(rows, dtype=np.int64), np.where(terms.rhs > 0, confidence, -confidence)


def reasons(model: Model, query: RecQuery, targets: np.ndarray, k: int) -> list[list[Reason]]:
    """Up to k reasons per target row, largest contribution first."""
    rows, confidence = history(model, query)
    if not len(rows) or not len(targets) or k <= 0:
        return [[] for _ in range(len(targets))]
    e = explain(model.item_factors, model.yty, rows, confidence, model.info.objective.regularization, targets,
                min(k, MAX_REASONS))
    out: list[list[Reason]] = []
    for total, top_rows, top_vals in zip(e.totals.tolist(), e.rows.tolist(), e.contributions.tolist(), strict=True):
        out.append([Reason(r, v, v / total if total else 0.0) for r, v in zip(top_rows, top_vals, strict=True)
                    if r >= 0])
    return out
