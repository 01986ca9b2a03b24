"""Exact top-k over rows of scores.

A row's k-th best score is at least the k-th largest of its chunk maxima (k chunks each
hold a value that large), so one max-reduction gives a threshold that keeps only a few
candidates, which are then sorted exactly. Ties go to the lower item row, as a stable
sort of the negated scores would order them.
"""

from __future__ import annotations

import numpy as np

CHUNK = 128


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, values), each (B, k'), k' = min(k, N), best first; -inf entries are excluded items."""
    b, n = scores.shape
    k = min(k, n)
    if k <= 0 or b == 0:
        return np.zeros((b, 0), dtype=np.int64), np.zeros((b, 0), dtype=scores.dtype)
    chunks = n // CHUNK
    if chunks < k or n <= 4 * CHUNK:
        return _sorted_prefix(scores, k)
    maxima = scores[:, : chunks * CHUNK].reshape(b, chunks, CHUNK).max(axis=2)
    if chunks * CHUNK < n:
        maxima = np.concatenate([maxima, scores[:, chunks * CHUNK :].max(axis=1, keepdims=True)], axis=1)
    m = maxima.shape[1]
    threshold = np.partition(maxima, m - k, axis=1)[:, m - k]
    rows, cols = np.nonzero(scores >= threshold[:, None])
    vals = scores[rows, cols]
    order = np.lexsort((cols, -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    starts = np.searchsorted(rows, np.arange(b))
    take = starts[:, None] + np.arange(k)[None, :]
    # every row has at least k candidates by construction of the threshold
    return cols[take], vals[take]


def _sorted_prefix(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if k < scores.shape[1]:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        # argpartition may split ties at the boundary arbitrarily: widen to every tied value.
        kth = np.take_along_axis(scores, part, axis=1).min(axis=1)
        rows, cols = np.nonzero(scores >= kth[:, None])
        vals = scores[rows, cols]
        order = np.lexsort((cols, -vals, rows))
        rows, cols, vals = rows[order], cols[order], vals[order]
        starts = np.searchsorted(rows, np.arange(scores.shape[0]))
        take = starts[:, None] + np.arange(k)[None, :]
        return cols[take], vals[take]
    order = np.argsort(-scores, axis=1, kind="stable")
    return order, np.take_along_axis(scores, order, axis=1)
