"""The one routine that computes every score a client sees, so a score never depends on batching.

A float32 matrix product rounds each dot product differently depending on the shapes BLAS
is handed (how many users were batched, where a block of items starts, how many threads
run), so the same (user, item) came back with different last bits from Recommend and
BatchRecommend. Here a score is a function of the two vectors alone:

- each product of two float32 numbers is exact in float64 (24 + 24 bits < 53);
- the d products are summed by a fixed pairwise tree (halves added elementwise, the
  width padded with zeros to a power of two), written out as elementwise adds so that
  neither numpy's reduction strategy nor the number of pairs changes the order;
- the float64 sum is rounded once to float32, the type the API returns.

Two forms of the same arithmetic: compiled (`_exactdot.c`, built at install when a C
compiler is there; a pair's products and halvings in a buffer of its own) for float32
inputs, and numpy (`numpy_scores`: each step a pass over float64 temporaries), the fallback
and the reference the compiled form is tested against bit for bit (tests/test_exactdot.py).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from reco_sidecar.common import native

# Pairs per chunk: bounds the float64 temporary (pairs x width x 8 bytes).
CHUNK = 1 << 14

Kernel = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], None]


# None when the install had no C compiler: the numpy form serves.
KERNEL: Kernel | None = native.kernel("reco_sidecar.engine._exactdot", "scores")


def error_bound(d: int) -> float:
    """Relative bound of the float64 sum's error against the real dot product, in units of
    sum |u_j v_j| <= |u| |v|: a pairwise tree of depth ceil(log2 d) rounds each term at most
    that many times."""
    depth = max(1, (max(d, 1) - 1).bit_length())
    return depth * 2.0**-53 / (1.0 - depth * 2.0**-53)


def scores(vectors: np.ndarray, items: np.ndarray, pair_vector: np.ndarray, pair_item: np.ndarray) -> np.ndarray:
    """float32 score of each (vectors[pair_vector[i]], items[pair_item[i]]) pair."""
    if (KERNEL is not None and vectors.dtype == np.float32 and items.dtype == np.float32
            and vectors.ndim == 2 and items.ndim == 2 and vectors.flags.c_contiguous and items.flags.c_contiguous):
        out = np.empty(len(pair_vector), dtype=np.float32)
        KERNEL(vectors, items, np.ascontiguousarray(pair_vector, dtype=np.int64),
               np.ascontiguousarray(pair_item, dtype=np.int64), out)
        return out
    return numpy_scores(vectors, items, pair_vector, pair_item)


def numpy_scores(vectors: np.ndarray, items: np.ndarray, pair_vector: np.ndarray, pair_item: np.ndarray
                 ) -> np.ndarray:
    """scores() in whole-array steps."""
    m = len(pair_vector)
    out = np.empty(m, dtype=np.float32)
    for s in range(0, m, CHUNK):
        u = np.asarray(vectors[pair_vector[s : s + CHUNK]], dtype=np.float64)
        out[s : s + CHUNK] = _tree_sum(u * np.asarray(items[pair_item[s : s + CHUNK]], dtype=np.float64))
    return out


def one_vector(vector: np.ndarray, items: np.ndarray) -> np.ndarray:
    """float32 scores of one vector against rows of items (the same values scores() gives)."""
    return scores(np.asarray(vector, dtype=np.float32)[None, :], items,
                  np.zeros(len(items), dtype=np.int64), np.arange(len(items)))


def _tree_sum(products: np.ndarray) -> np.ndarray:
    m, d = products.shape
    width = 1 << max(0, (d - 1).bit_length()) if d else 1
    if width != d:
        products = np.concatenate([products, np.zeros((m, width - d), dtype=np.float64)], axis=1)
    while width > 1:
        width //= 2
        products = products[:, :width] + products[:, width:]
    return products[:, 0]
