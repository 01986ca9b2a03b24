"""Reasons for a user's recommended items, from the user's history (engine/explain.py).

Whose history: a folded-in user's is the items the request supplied, each with confidence
alpha (the weights fold-in solves with); a stored user's is the artifact's seen items with
their confidences when the artifact carries them, and alpha otherwise, which is exact for
models trained on unit weights. Regularisation and alpha are the model's fold-in parameters,
which for ALS are its training ones. For BPR and imported models the reasons explain the
fold-in solution of that history, an ALS-style reading of factors not fitted to that loss
(docs/ranking.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reco_sidecar.engine.explain import explain
from reco_sidecar.engine.model import Model
from reco_sidecar.engine.query import RecQuery

MAX_REASONS = 20


@dataclass(frozen=True)
class Reason:
    row: int
    contribution: float
    share: float


def history(model: Model, query: RecQuery) -> tuple[np.ndarray, np.ndarray]:
    """(item rows, confidences) the query's user vector is explained by."""
    alpha = float(model.info.fold_in.get("alpha", 1.0))
    if query.vector is not None and query.seen_rows is not None:
        rows = np.unique(np.asarray(query.seen_rows, dtype=np.int64))
        return rows, np.full(len(rows), max(alpha, 1e-6))
    if query.user_row is None:
        return np.zeros(0, np.int64), np.zeros(0)
    stored = getattr(model, "history", None)  # per-user confidences, in artifacts that carry them
    if callable(stored):
        rows, confidence = stored(query.user_row)
        return np.asarray(rows, dtype=np.int64), np.asarray(confidence, dtype=np.float64)
    rows = np.asarray(model.seen_rows(query.user_row), dtype=np.int64)
    return rows, np.full(len(rows), max(alpha, 1e-6))


def reasons(model: Model, query: RecQuery, targets: np.ndarray, k: int) -> list[list[Reason]]:
    """Up to k reasons per target row, largest contribution first."""
    rows, confidence = history(model, query)
    if not len(rows) or not len(targets) or k <= 0:
        return [[] for _ in range(len(targets))]
    e = explain(model.item_factors, model.yty, rows, confidence,
                float(model.info.fold_in.get("regularization", 0.1)), targets, min(k, MAX_REASONS))
    out: list[list[Reason]] = []
    for total, top_rows, top_vals in zip(e.totals.tolist(), e.rows.tolist(), e.contributions.tolist(), strict=True):
        out.append([Reason(r, v, v / total if total else 0.0) for r, v in zip(top_rows, top_vals, strict=True)
                    if r >= 0])
    return out
