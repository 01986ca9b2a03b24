"""What each known file of a version must be, derived from the manifest's counts: the dtype
and shape of every array, and an upper bound on every file's size.

The bound is checked against the manifest before any byte of the file is read, so a
manifest that vouches for a huge file (a 50 GB sparse one) is refused by arithmetic instead
of by hashing it for minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reco_sidecar.artifact import layout
from reco_sidecar.artifact.manifest import Manifest

# np.save writes a header padded to 64 bytes; format 1.0 headers stay below 64 KiB.
NPY_HEADER_MAX = (1 << 16) + 16
# Id maps: msgpack headers plus the ids' UTF-8 bytes, at most this much per id on average.
ID_BYTES_PER_ENTRY = 1024
# Item metadata (a category and tags per item): on average at most this much per item.
METADATA_BYTES_PER_ITEM = 16 * 1024
SLACK = 1 << 20


@dataclass(frozen=True)
class Array:
    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def payload(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


def arrays(man: Manifest) -> dict[str, Array]:
    """Every array file this version holds (optional ones when listed), with dtype and shape."""
    u, i, d = man.user_count, man.item_count, man.factors
    f32, i32, i64 = np.dtype(np.float32), np.dtype(np.int32), np.dtype(np.int64)
    out = {
        layout.USER_FACTORS: Array(f32, (u, d)),
        layout.ITEM_FACTORS: Array(f32, (i, d)),
        layout.SEEN_INDPTR: Array(i64, (u + 1,)),
        layout.SEEN_INDICES: Array(i32, (man.seen_count,)),
        layout.ITEM_POPULARITY: Array(f32, (i,)),
    }
    if layout.SEEN_WEIGHTS in man.files:
        out[layout.SEEN_WEIGHTS] = Array(f32, (man.seen_count,))
    if layout.COLD_START_VECTOR in man.files:
        out[layout.COLD_START_VECTOR] = Array(f32, (d,))
    if man.ann.exact_neighbours:
        out[layout.ITEM_NEIGHBOURS] = Array(i32, (i, man.ann.exact_neighbours))
        out[layout.ITEM_NEIGHBOUR_SCORES] = Array(f32, (i, man.ann.exact_neighbours))
    if layout.ITEMS_BY_NORM in man.files:
        out[layout.ITEMS_BY_NORM] = Array(f32, (i, d))
        out[layout.ITEM_NORM_ORDER] = Array(i64, (i,))
        out[layout.ITEM_NORMS] = Array(np.dtype(np.float64), (i,))
    for files, n in ((layout.USER_ID_FILES, u), (layout.ITEM_ID_FILES, i)):
        if files[0] in man.files:
            spans, hashes, rows = files
            out[spans] = Array(i64, (n, 2))
            out[hashes] = Array(np.dtype(np.uint64), (n,))
            out[rows] = Array(i64, (n,))
    return out


def max_bytes(name: str, man: Manifest) -> int | None:
    """The most bytes file `name` can hold in a valid version; None for a file the sidecar does
    not know (and never reads)."""
    shapes = arrays(man)
    if name in shapes:
        return shapes[name].payload + NPY_HEADER_MAX
    if name == layout.DEFAULT_ITEMS:
        return man.item_count * 4 + NPY_HEADER_MAX
    if name == layout.USER_IDS:
        return man.user_count * ID_BYTES_PER_ENTRY + SLACK
    if name == layout.ITEM_IDS:
        return man.item_count * ID_BYTES_PER_ENTRY + SLACK
    if name == layout.ITEM_METADATA:
        return man.item_count * METADATA_BYTES_PER_ITEM + SLACK
    if name == layout.ANN_INDEX:
        # annoy stores one node per item and about 2 × trees × items / (factors + 2) split
        # nodes; each node is the factors plus a few 4-byte fields. Twice that, generously.
        node = 4 * man.factors + 16
        return 2 * node * (man.item_count + 2 * man.ann.trees * man.item_count) + SLACK
    return None
