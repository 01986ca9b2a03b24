"""Exact top-k over rows of scores (select): (columns, values), for callers that hold every score.

A row's k-th best score is at least the k-th largest of its group maxima (k groups each
hold a value that large), so one max-reduction gives a threshold that keeps only a few
candidates, which are then sorted exactly. Ties go to the lower item row, as a stable
sort of the negated scores would order them.

float32 candidates are sorted as int64 keys that order like (-score, item row): one
integer sort per row instead of a three-key lexsort.
"""

from __future__ import annotations

import numpy as np

# Empty slot in a row of keys: sorts after every real key.
EMPTY = np.iinfo(np.int64).max
# Groups whose maxima give the threshold: enough that the k-th of them is close to the k-th
# score (few candidates), few enough that partitioning them is cheap.
GROUPS_PER_K = 8
# Rows with more candidates than this (masses of ties, e.g. all -inf) go to lexsort.
DENSE_WIDTH = 4096


def sort_keys(vals: np.ndarray, item_rows: np.ndarray) -> np.ndarray:
    """int64 keys ordering like (-score, item row) for float32 scores and rows < 2**31.

    The float's bits are mapped to an int32 that orders like the float; + 0.0 folds -0.0
    into 0.0, as == (and so a stable sort) does.
    """
    neg = (-vals + np.float32(0.0)).astype(np.float32, copy=False).view(np.int32)
    ordered = neg ^ ((neg >> 31) & np.int32(0x7FFFFFFF))
    keys: np.ndarray = (ordered.astype(np.int64) << 32) | item_rows
    return keys


def decode_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(item rows, float32 scores) back from sort_keys."""
    ordered = (keys >> 32).astype(np.int32)
    neg = (ordered ^ ((ordered >> 31) & np.int32(0x7FFFFFFF))).view(np.float32)
    return keys & np.int64(0xFFFFFFFF), -neg


def select(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, values), each (B, k'), k' = min(k, N), best first; -inf entries are excluded items."""
    b, n = scores.shape
    k = min(k, n)
    if k <= 0 or b == 0:
        return np.zeros((b, 0), dtype=np.int64), np.zeros((b, 0), dtype=scores.dtype)
    threshold = _threshold(scores, k)
    # flat nonzero is several times faster than the 2-D form
    flat = np.flatnonzero(scores >= threshold[:, None])
    rows, cols = np.divmod(flat, n)
    counts = np.bincount(rows, minlength=b)
    if counts.min() < k:
        # only NaN scores (which compare false) leave a row short: sort those batches whole
        cols = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    elif scores.dtype == np.float32 and n < 2**31:
        cols = _sorted_by_keys(rows, sort_keys(scores[rows, cols], cols), counts, k)
    else:
        order = np.lexsort((cols, -scores[rows, cols], rows))
        rows, cols = rows[order], cols[order]
        # every row has at least k candidates by construction of the threshold
        cols = cols[np.searchsorted(rows, np.arange(b))[:, None] + np.arange(k)[None, :]]
    return cols, np.take_along_axis(scores, cols, axis=1)


def _threshold(scores: np.ndarray, k: int) -> np.ndarray:
    """Per row, a value at or below its k-th largest score."""
    b, n = scores.shape
    size = n // (GROUPS_PER_K * k)
    if size >= 2:
        m = n // size
        # strided groups: an elementwise maximum of `size` contiguous slices, which SIMD does
        # well (a max over short contiguous chunks does not); leftover scores count as groups
        top = np.max(scores[:, : m * size].reshape(b, size, m), axis=1)
        if m * size < n:
            top = np.concatenate([top, scores[:, m * size :]], axis=1)
    else:
        top = scores
    m = top.shape[1]
    return np.asarray(np.partition(top, m - k, axis=1)[:, m - k])


def _sorted_by_keys(rows: np.ndarray, keys: np.ndarray, counts: np.ndarray, k: int) -> np.ndarray:
    """The first k item rows of each row's candidates (rows ascending), by key."""
    b = len(counts)
    starts = np.cumsum(counts) - counts
    width = int(counts.max())
    if width > DENSE_WIDTH:
        order = np.lexsort((keys, rows))
        return np.asarray(keys[order][starts[:, None] + np.arange(k)[None, :]] & np.int64(0xFFFFFFFF))
    dense = np.full((b, width), EMPTY, dtype=np.int64)
    dense[rows, np.arange(len(rows)) - starts[rows]] = keys
    dense.sort(axis=1)
    return np.asarray(dense[:, :k] & np.int64(0xFFFFFFFF))
