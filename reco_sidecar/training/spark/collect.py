"""What the driver needs from the cluster to write an artifact: ids in row order and the
(user, item, weight) matrix, streamed partition by partition into numpy arrays.

The artifact is one directory of memory-mapped arrays, so these end up in one place anyway; what
this avoids is holding them as Python objects. Driver memory needed: about 12 bytes per pair plus
the id strings (docs/training.md, "Which engine").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

# Rows gathered per numpy chunk while streaming.
CHUNK = 1 << 20


def ids_in_order(index: DataFrame, column: str, row: str, n: int) -> list[str]:
    out: list[str | None] = [None] * n
    for r in index.toLocalIterator(prefetchPartitions=True):
        out[r[row]] = r[column]
    if any(v is None for v in out):
        raise ValueError(f"{column}: row numbers are not dense")
    return [str(v) for v in out]


def matrix(ratings: DataFrame, n_users: int, n_items: int, *, flag: str | None = None
           ) -> tuple[sp.csr_matrix, sp.csr_matrix | None]:
    """CSR users x items of `r`; with `flag`, a second CSR of the rows where that column is true."""
    cols = ["u", "i", "r"] + ([flag] if flag else [])
    us: list[np.ndarray] = []
    its: list[np.ndarray] = []
    ws: list[np.ndarray] = []
    fs: list[np.ndarray] = []
    bu: list[int] = []
    bi: list[int] = []
    bw: list[float] = []
    bf: list[bool] = []

    def flush() -> None:
        if bu:
            us.append(np.asarray(bu, dtype=np.int32))
            its.append(np.asarray(bi, dtype=np.int32))
            ws.append(np.asarray(bw, dtype=np.float32))
            fs.append(np.asarray(bf, dtype=bool))
            for buffer in (bu, bi, bw, bf):
                buffer.clear()

    for r in ratings.select(*cols).toLocalIterator(prefetchPartitions=True):
        bu.append(r[0])
        bi.append(r[1])
        bw.append(r[2])
        bf.append(bool(r[3]) if flag else False)
        if len(bu) >= CHUNK:
            flush()
    flush()
    u = np.concatenate(us) if us else np.zeros(0, np.int32)
    i = np.concatenate(its) if its else np.zeros(0, np.int32)
    w = np.concatenate(ws) if ws else np.zeros(0, np.float32)
    f = np.concatenate(fs) if fs else np.zeros(0, bool)
    shape = (n_users, n_items)
    if not flag:
        return _csr(u, i, w, shape), None
    return _csr(u[~f], i[~f], w[~f], shape), _csr(u[f], i[f], w[f], shape)


def _csr(u: np.ndarray, i: np.ndarray, w: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    m = sp.coo_matrix((w, (u, i)), shape=shape).tocsr()
    m.sum_duplicates()
    m.sort_indices()
    return m
