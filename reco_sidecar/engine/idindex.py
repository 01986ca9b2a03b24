"""External string id <-> matrix row.

Two forms, one interface (`len`, `ids[row]`, `row(id)`, `rows_of(ids)`):

- HashedIdIndex reads the ids in place from their msgpack file (memory-mapped, so every
  worker shares the pages) through each id's byte span, and finds a row by a 64-bit
  blake2b hash of the id in a sorted hash array (numpy searchsorted), confirming every hit
  by comparing the id's bytes: exact lookup without a Python dict of every id per worker.
- DictIdIndex is the plain dict, for artifacts written before the spans and hashes existed.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import overload

import numpy as np


def id_hash(id_: str) -> int:
    """The 64-bit key an id is found by (stored in artifacts: never change it)."""
    return int.from_bytes(hashlib.blake2b(id_.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


class IdIndex:
    """Row <-> id; subclasses hold the data."""

    __slots__ = ("__weakref__",)

    @property
    def ids(self) -> Sequence[str]:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.ids)

    def row(self, id_: str) -> int | None:
        raise NotImplementedError

    def rows_or_none(self, ids: Sequence[str]) -> list[int | None]:
        """`row(id)` of each id, in order (a subclass may find them all at once)."""
        return [self.row(id_) for id_ in ids]

    def rows_of(self, ids: Iterable[str]) -> tuple[np.ndarray, list[str]]:
        """Rows of the known ids, and the ids that are unknown."""
        rows: list[int] = []
        unknown: list[str] = []
        row = self.row
        for id_ in ids:
            r = row(id_)
            if r is None:
                unknown.append(id_)
            else:
                rows.append(r)
        return np.asarray(rows, dtype=np.int64), unknown


# Building the map holds the GIL; a reload builds it beside live traffic, so it yields
# between chunks instead of stalling request threads for the whole map.
_CHUNK = 16_384


class DictIdIndex(IdIndex):
    __slots__ = ("_ids", "rows")

    def __init__(self, ids: list[str]) -> None:
        self._ids = ids
        self.rows: dict[str, int] = {}
        for start in range(0, len(ids), _CHUNK):
            self.rows.update(zip(ids[start : start + _CHUNK], range(start, start + _CHUNK), strict=False))
            time.sleep(0)

    @property
    def ids(self) -> Sequence[str]:
        return self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def row(self, id_: str) -> int | None:
        return self.rows.get(id_)

    def rows_of(self, ids: Iterable[str]) -> tuple[np.ndarray, list[str]]:
        rows: list[int] = []
        unknown: list[str] = []
        get = self.rows.get
        for id_ in ids:
            r = get(id_)
            if r is None:
                unknown.append(id_)
            else:
                rows.append(r)
        return np.asarray(rows, dtype=np.int64), unknown


class SpanIds(Sequence[str]):
    """The ids as a read-only sequence decoded on access from a buffer (a memory map) by
    [start, end) byte spans. Decoded ids are kept, so a hot item is decoded once."""

    __slots__ = ("_buf", "_cache", "_spans")

    def __init__(self, buf: bytes | memoryview, spans: np.ndarray) -> None:
        self._buf = buf
        self._spans = spans  # (n, 2) int64
        # created on first access: a map nobody reads by row (users) costs nothing
        self._cache: list[str | None] | None = None

    def __len__(self) -> int:
        return int(self._spans.shape[0])

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        cache = self._cache
        if cache is None:
            cache = self._cache = [None] * len(self)
        value = cache[i]
        if value is None:
            start, end = self._spans[i]
            value = cache[i] = bytes(self._buf[int(start) : int(end)]).decode("utf-8")
        return value

    def __iter__(self) -> Iterator[str]:
        for i in range(len(self)):
            yield self[i]

    def raw(self, i: int) -> bytes:
        start, end = self._spans[i]
        return bytes(self._buf[int(start) : int(end)])


class HashedIdIndex(IdIndex):
    """Ids found through sorted 64-bit hashes; see the module docstring."""

    __slots__ = ("_hash_rows", "_hashes", "_ids")

    def __init__(self, ids: SpanIds, hashes: np.ndarray, hash_rows: np.ndarray) -> None:
        self._ids = ids
        self._hashes = hashes  # (n,) uint64, ascending
        self._hash_rows = hash_rows  # (n,) int64: the row of each hash

    @property
    def ids(self) -> SpanIds:
        return self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def row(self, id_: str) -> int | None:
        key = id_hash(id_)
        hashes = self._hashes
        at = int(hashes.searchsorted(np.uint64(key)))  # the method: np.searchsorted dispatches first
        raw = None
        n = len(hashes)
        while at < n and int(hashes[at]) == key:
            r = int(self._hash_rows[at])
            if raw is None:
                raw = id_.encode("utf-8", "surrogatepass")
            if self._ids.raw(r) == raw:
                return r
            at += 1
        return None

    def rows_or_none(self, ids: Sequence[str]) -> list[int | None]:
        """`row(id)` of each id: the hashes searched in one searchsorted, each hit confirmed
        by its bytes as `row` does."""
        if not ids:
            return []
        raws = [id_.encode("utf-8", "surrogatepass") for id_ in ids]
        keys = np.fromiter((int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little") for raw in raws),
                           dtype=np.uint64, count=len(raws))
        hashes = self._hashes
        found = hashes.searchsorted(keys).tolist()
        n = len(hashes)
        out: list[int | None] = []
        for raw, key, at in zip(raws, keys.tolist(), found, strict=True):
            row = None
            while at < n and int(hashes[at]) == key:
                r = int(self._hash_rows[at])
                if self._ids.raw(r) == raw:
                    row = r
                    break
                at += 1
            out.append(row)
        return out
