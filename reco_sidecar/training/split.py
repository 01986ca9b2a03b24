"""A per-user hold-out split: some of each active user's items are hidden for evaluation.

Random rather than by time because interactions arrive aggregated per (user, item); the
seed makes the split the same on every run. Users with few items stay whole in train:
hiding one of their two items would say more about cold start than about the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from reco_sidecar.common.errors import InvalidArgument


@dataclass(frozen=True)
class Split:
    # Both users x items, same shape and rows as the data they came from.
    train: sp.csr_matrix
    test: sp.csr_matrix

    @property
    def test_users(self) -> np.ndarray:
        return np.flatnonzero(np.diff(self.test.indptr) > 0)


def holdout(matrix: sp.csr_matrix, fraction: float, *, seed: int = 7, min_items: int = 5) -> Split:
    """Hides floor(fraction x n) (at least one) of the items of each user with >= min_items items."""
    if not 0.0 < fraction < 1.0:
        raise InvalidArgument(f"hold-out fraction must be between 0 and 1, got {fraction}", field="holdout")
    m = matrix.tocsr()
    m.sort_indices()
    counts = np.diff(m.indptr)
    eligible = counts >= max(2, min_items)
    n_hold = np.where(eligible, np.clip(np.floor(fraction * counts), 1, counts - 1), 0).astype(np.int64)
    user_of = np.repeat(np.arange(m.shape[0]), counts)
    key = np.random.default_rng(seed).random(m.nnz)
    # Rank each entry within its user by its random key; the lowest n_hold ranks go to test.
    order = np.lexsort((key, user_of))
    rank = np.empty(m.nnz, dtype=np.int64)
    rank[order] = np.arange(m.nnz) - np.repeat(m.indptr[:-1], counts)
    in_test = rank < n_hold[user_of]
    return Split(_subset(m, ~in_test), _subset(m, in_test))


def _subset(m: sp.csr_matrix, keep: np.ndarray) -> sp.csr_matrix:
    coo = m.tocoo()
    out = sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=m.shape)
    out.sort_indices()
    return out
