"""Id maps on disk: `<what>_ids.msgpack` (the ids, a msgpack array of strings) and, from
writers that know them, three derived arrays that let a worker use the ids in place:

- `<what>_id_spans.npy` int64 (n, 2): [start, end) of each id's UTF-8 bytes in the msgpack file;
- `<what>_id_hashes.npy` uint64 (n,): engine.idindex.id_hash of every id, ascending;
- `<what>_id_hash_rows.npy` int64 (n,): the row of each of those hashes.

The loader checks the spans exactly against the msgpack encoding (vectorized: every string
header between two spans must encode the span's length), the UTF-8 of every id, that the
hash rows are a permutation and the hashes ascend, a sample of hashes against the ids, and
uniqueness (equal neighbouring hashes, then bytes). Without the derived files the ids are
unpacked into a dict as before.
"""

from __future__ import annotations

import mmap
import pathlib
from dataclasses import dataclass

import msgpack
import numpy as np

from reco_sidecar.common.errors import ArtifactError
from reco_sidecar.engine.idindex import HashedIdIndex, SpanIds, id_hash

# Rows whose stored hash is recomputed at load (the checksums vouch for the rest).
HASH_SAMPLE = 64


@dataclass(frozen=True)
class Encoded:
    data: bytes  # the msgpack file
    spans: np.ndarray
    hashes: np.ndarray
    hash_rows: np.ndarray


def encode(ids: list[str]) -> Encoded:
    """The msgpack file of `ids` (the same bytes msgpack.packb(ids) gives) and its derived arrays."""
    packer = msgpack.Packer()
    parts = [packer.pack_array_header(len(ids))]
    spans = np.empty((len(ids), 2), dtype=np.int64)
    at = len(parts[0])
    for row, id_ in enumerate(ids):
        packed = packer.pack(id_)
        size = len(id_.encode("utf-8"))
        spans[row] = (at + len(packed) - size, at + len(packed))
        at += len(packed)
        parts.append(packed)
    keys = np.fromiter((id_hash(i) for i in ids), dtype=np.uint64, count=len(ids))
    order = np.argsort(keys, kind="stable")
    return Encoded(b"".join(parts), spans, keys[order], order.astype(np.int64))


def _array_header(blob: np.ndarray, path: pathlib.Path, count: int, what: str) -> int:
    """Length of the msgpack array header, which must announce `count` elements."""
    if not len(blob):
        raise ArtifactError(path, f"{what} id map is not valid msgpack: empty file")
    buf = blob[:5].tobytes()
    b0 = buf[0]
    if 0x90 <= b0 <= 0x9F:
        n, size = b0 & 0x0F, 1
    elif b0 == 0xDC and len(buf) >= 3:
        n, size = int.from_bytes(buf[1:3], "big"), 3
    elif b0 == 0xDD and len(buf) >= 5:
        n, size = int.from_bytes(buf[1:5], "big"), 5
    else:
        raise ArtifactError(path, f"{what} id map is not valid msgpack holding a list of strings")
    if n != count:
        raise ArtifactError(path, f"{n} {what} ids, manifest says {count}")
    return size


def _check_spans(blob: np.ndarray, spans: np.ndarray, head: int, path: pathlib.Path, what: str) -> None:
    """Every span is exactly one msgpack string element, in order, covering the whole file."""
    n = len(spans)
    starts, ends = spans[:, 0], spans[:, 1]
    prev_end = np.concatenate(([head], ends[:-1])) if n else np.zeros(0, dtype=np.int64)
    hl = starts - prev_end
    length = ends - starts
    size = len(blob)
    bad = f"{what} id spans do not match the msgpack strings of {path.name}"
    if n == 0:
        if size != head:
            raise ArtifactError(path, bad)
        return
    if ends[-1] != size or (length < 0).any() or not np.isin(hl, (1, 2, 3, 5)).all() or (prev_end < head).any():
        raise ArtifactError(path, bad)
    last = size - 1

    def byte(k: int, where: np.ndarray) -> np.ndarray:
        """Byte k of the header before each selected span (gathered, not the whole file widened)."""
        out: np.ndarray = blob[np.minimum(prev_end[where] + k, last)].astype(np.int64)
        return out

    one, two, three, five = hl == 1, hl == 2, hl == 3, hl == 5
    ok = np.ones(n, dtype=bool)
    ok[one] = (byte(0, one) == (0xA0 | length[one])) & (length[one] < 32)
    ok[two] = (byte(0, two) == 0xD9) & (byte(1, two) == length[two])
    ok[three] = (byte(0, three) == 0xDA) & (byte(1, three) * 256 + byte(2, three) == length[three])
    ok[five] = (byte(0, five) == 0xDB) & (
        ((byte(1, five) * 256 + byte(2, five)) * 256 + byte(3, five)) * 256 + byte(4, five) == length[five])
    if not ok.all():
        raise ArtifactError(path, bad)
    # Each id is valid UTF-8: the ids' bytes together decode, and no id starts inside a
    # character (a continuation byte), so no character straddles two ids.
    first = blob[starts[length > 0]]
    if ((first & 0xC0) == 0x80).any():
        raise ArtifactError(path, f"{what} id map holds an id that is not UTF-8")
    # +1 at each start, -1 at each end: both index sets are strictly increasing, so plain
    # fancy assignment adds once per index (np.add.at is many times slower)
    marks = np.zeros(size + 1, dtype=np.int8)
    marks[starts] += 1
    marks[ends] -= 1
    try:
        blob[np.cumsum(marks[:-1], dtype=np.int8) > 0].tobytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ArtifactError(path, f"{what} id map holds an id that is not UTF-8") from None


def hashed_index(fd: int, path: pathlib.Path, size: int, count: int, what: str, spans: np.ndarray,
                 hashes: np.ndarray, hash_rows: np.ndarray, paths: tuple[pathlib.Path, pathlib.Path]
                 ) -> HashedIdIndex:
    """The id map of the msgpack file open as `fd` (verified), through its derived arrays."""
    buf: memoryview | bytes
    if size:
        mm = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
        buf = memoryview(mm)
    else:
        buf = b""
    blob = np.frombuffer(buf, dtype=np.uint8)
    head = _array_header(blob, path, count, what)
    _check_spans(blob, spans, head, path, what)
    hashes_path, rows_path = paths
    if count and (hash_rows.min() < 0 or hash_rows.max() >= count):
        raise ArtifactError(rows_path, f"{what} hash rows name rows outside the ids")
    seen = np.zeros(count, dtype=bool)
    seen[hash_rows] = True
    if not seen.all():
        raise ArtifactError(rows_path, f"{what} hash rows are not a permutation of the rows")
    if count > 1 and (hashes[1:] < hashes[:-1]).any():
        raise ArtifactError(hashes_path, f"{what} id hashes are not ascending")
    ids = SpanIds(buf, spans)
    sample = np.random.default_rng(count).choice(count, size=min(count, HASH_SAMPLE), replace=False)
    for k in sample.tolist():
        if id_hash(ids[int(hash_rows[k])]) != int(hashes[k]):
            raise ArtifactError(hashes_path, f"{what} id hashes do not match the ids")
    # A repeated id repeats its hash: only runs of equal hashes (almost always none) can hold one.
    same = np.flatnonzero(hashes[1:] == hashes[:-1])
    runs: dict[int, set[int]] = {}
    for k in same.tolist():
        runs.setdefault(int(hashes[k]), set()).update((k, k + 1))
    for members in runs.values():
        raws = [ids.raw(int(hash_rows[k])) for k in members]
        if len(set(raws)) != len(raws):
            raise ArtifactError(path, f"{what} ids are not unique")
    return HashedIdIndex(ids, hashes, hash_rows)
