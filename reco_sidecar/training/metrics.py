"""Top-k ranking metrics against held-out items (binary relevance)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

METRICS = ("precision", "recall", "ndcg", "coverage")


def hits(recommended: np.ndarray, users: np.ndarray, test: sp.csr_matrix) -> np.ndarray:
    """(len(users), k) bool: whether each recommended row is one of that user's test items.

    Rows of -1 are padding (fewer rankable items than k) and never hit.
    """
    test = test.tocsr()
    test.sort_indices()
    n_items = np.int64(test.shape[1])
    # Row-major CSR with sorted indices gives sorted (user, item) keys: one binary search each.
    keys = np.repeat(np.arange(test.shape[0], dtype=np.int64), np.diff(test.indptr)) * n_items + test.indices
    query = users.astype(np.int64)[:, None] * n_items + recommended
    if not len(keys):
        return np.zeros(recommended.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    found: np.ndarray = (keys[pos] == query) & (recommended >= 0)
    return found


def ranking_metrics(recommended: np.ndarray, users: np.ndarray, test: sp.csr_matrix,
                    k: int) -> dict[str, float]:
    """Mean precision@k, recall@k and NDCG@k over `users`, and catalogue coverage@k.

    Recall divides by all of a user's held-out items; coverage is the share of the
    catalogue that appears in at least one user's top k.
    """
    n_items = test.shape[1]
    if not len(users):
        return dict.fromkeys(METRICS, 0.0)
    rec = recommended[:, :k]
    h = hits(rec, users, test)
    relevant = np.diff(test.tocsr().indptr)[users].astype(np.float64)
    found = h.sum(axis=1)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (h * discounts[: rec.shape[1]]).sum(axis=1)
    ideal = np.cumsum(discounts)[np.minimum(relevant, k).astype(np.int64) - 1]
    shown = rec[rec >= 0]
    return {
        "precision": float(np.mean(found / k)),
        "recall": float(np.mean(found / relevant)),
        "ndcg": float(np.mean(dcg / ideal)),
        "coverage": float(len(np.unique(shown)) / n_items),
    }
