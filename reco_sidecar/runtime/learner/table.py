"""The table of online user vectors, one file per served model version, mapped by the
learner (the one writer) and by every worker (readers).

Layout: a 64-byte header, then `buckets * WAYS` fixed-size slots. A user's slot is one of
the WAYS slots of bucket `key1 % buckets`, where (key0, key1) is the user id's 128-bit
blake2b digest; when all WAYS are taken, the least recently updated user of that bucket is
evicted (docs/online.md, "Bounds"). Each slot is guarded by a sequence number (a seqlock):
the writer makes it odd, writes, makes it even; a reader that saw it odd or changed reads
again. Stores reach other processes in program order on x86-64 (TSO), which the seqlock
relies on.

When the learner replaces a table (a new version, or a learner restart that rebuilt it),
it renames the new file into place and sets the old one's `retired` word: a reader seeing
it opens the path again.

A slot holds, besides the vector (valid when `solved`: a user with only impressions has
none, and is answered from the trained vector):
- the user's online sums per item (rows of this version, summed values), the part of the
  solve's history the events contributed, so a worker explains the vector with the values
  it was solved from (ranking/reasons.py);
- how many times each item was shown to the user without an engagement since (the
  impressions rule, docs/ranking.md), for the MAX_SHOWN items most recently shown.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAGIC = b"RECOONL2"
WAYS = 8
MAX_SEEN = 128
MAX_SHOWN = 64
HEADER_BYTES = 64
_RETIRED_AT = 32
_READ_ATTEMPTS = 1000


def slot_dtype(factors: int) -> np.dtype:
    return np.dtype([("seq", "<u8"), ("key0", "<u8"), ("key1", "<u8"), ("updated", "<f8"),
                     ("known", "<u4"), ("n_seen", "<u4"), ("seen", "<i4", (MAX_SEEN,)),
                     ("solved", "<u4"), ("n_sums", "<u4"), ("sum_rows", "<i4", (MAX_SEEN,)),
                     ("sum_values", "<f8", (MAX_SEEN,)), ("n_shown", "<u4"), ("shown_rows", "<i4", (MAX_SHOWN,)),
                     ("shown_counts", "<u4", (MAX_SHOWN,)), ("vector", "<f4", (factors,))])


def key_of(user_id: str) -> tuple[int, int]:
    digest = hashlib.blake2b(user_id.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    # key0 is never 0: 0 marks an empty slot
    return int.from_bytes(digest[:8], "little") | 1, int.from_bytes(digest[8:], "little")


def _bucket(key1: int, buckets: int) -> int:
    # key1, not key0: key0's lowest bit is always set, so key0 would use odd buckets only
    return key1 % buckets


def buckets_for(max_users: int) -> int:
    return max(1, -(-max_users // WAYS))


def table_path(directory: pathlib.Path, model: str, version: int) -> pathlib.Path:
    return directory / f"{model}-{version}.table"


@dataclass(frozen=True)
class Slot:
    """One user's row: what the learner writes, and what a worker's lookup reads back
    (`vector` None: nothing solved, the trained vector stands)."""

    vector: np.ndarray | None
    seen_rows: np.ndarray
    known: bool
    sum_rows: np.ndarray
    sum_values: np.ndarray
    shown_rows: np.ndarray
    shown_counts: np.ndarray


class _Mapped:
    def __init__(self, path: pathlib.Path, *, writable: bool) -> None:
        fd = os.open(path, os.O_RDWR if writable else os.O_RDONLY)
        try:
            self.mm = mmap.mmap(fd, 0, prot=mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0))
        finally:
            os.close(fd)
        header = np.frombuffer(self.mm, dtype=np.uint8, count=HEADER_BYTES)
        if bytes(header[:8]) != MAGIC:
            raise ValueError(f"{path}: not an online table")
        words = header[8:32].view("<i8")
        self.version, factors, self.buckets = int(words[0]), int(words[1]), int(words[2])
        self.retired_word = np.frombuffer(self.mm, dtype="<u4", count=1, offset=_RETIRED_AT)
        self.slots = np.frombuffer(self.mm, dtype=slot_dtype(factors), count=self.buckets * WAYS,
                                   offset=HEADER_BYTES)
        self.factors = factors

    def close(self) -> None:
        """Unmaps, unless an array taken from it is still alive: then the mapping goes with it."""
        del self.slots, self.retired_word
        with contextlib.suppress(BufferError):
            self.mm.close()


class TableWriter:
    """The learner's side. Keeps which user holds which slot (bounded by the slot count)."""

    def __init__(self, path: pathlib.Path, version: int, factors: int, max_users: int) -> None:
        buckets = buckets_for(max_users)
        size = HEADER_BYTES + buckets * WAYS * slot_dtype(factors).itemsize
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            header = bytearray(HEADER_BYTES)
            header[:8] = MAGIC
            header[8:32] = np.array([version, factors, buckets], dtype="<i8").tobytes()
            f.write(header)
            f.truncate(size)  # sparse: slots never written take no memory
        self._m = _Mapped(tmp, writable=True)
        self.path, self._tmp = path, tmp
        self.version, self.capacity = version, buckets * WAYS
        self._slot_of: dict[str, int] = {}
        self._owner: dict[int, str] = {}
        # Each occupied slot's `updated` (the write count), mirrored here: the writer decides
        # eviction without reading the mapped table back.
        self._stamp: dict[int, int] = {}
        self._writes = 0
        # One view per field, made once: an element write through them is a fraction of the
        # cost of indexing the structured array by field name on every write.
        slots = self._m.slots
        self._seq, self._key0, self._key1 = slots["seq"], slots["key0"], slots["key1"]
        self._updated, self._known, self._n_seen = slots["updated"], slots["known"], slots["n_seen"]
        self._seen, self._vector = slots["seen"], slots["vector"]
        self._solved, self._n_sums = slots["solved"], slots["n_sums"]
        self._sum_rows, self._sum_values = slots["sum_rows"], slots["sum_values"]
        self._n_shown, self._shown_rows = slots["n_shown"], slots["shown_rows"]
        self._shown_counts = slots["shown_counts"]

    def publish(self) -> None:
        """Renames the table into place, where workers find it (after the initial fill)."""
        os.replace(self._tmp, self.path)

    def __len__(self) -> int:
        return len(self._slot_of)

    def users(self) -> list[str]:
        return list(self._slot_of)

    def put(self, user_id: str, entry: Slot) -> str | None:
        """Writes one user's slot (put_many of one); returns the user evicted, if any."""
        vector = np.zeros((1, self._m.factors), np.float32) if entry.vector is None else np.asarray(entry.vector)[None]
        evicted = self.put_many([user_id], vector, [entry.seen_rows], [entry.known],
                                solved=np.array([entry.vector is not None]),
                                sums=(np.array([len(entry.sum_rows[-MAX_SEEN:])]), entry.sum_rows[-MAX_SEEN:],
                                      entry.sum_values[-MAX_SEEN:]),
                                shown=[(entry.shown_rows, entry.shown_counts)])
        return evicted[0] if evicted else None

    def put_many(self, user_ids: Sequence[str], vectors: np.ndarray, seen_rows: Sequence[np.ndarray],
                 known: Sequence[bool], *, solved: np.ndarray | None = None,
                 sums: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                 shown: Sequence[tuple[np.ndarray, np.ndarray]] | None = None) -> list[str]:
        """Writes each user's slot, in order (user i gets vectors[i]); returns the users evicted
        to make room. `updated` is a count of writes, not a clock: the order of updates decides
        eviction, without ties, exactly as if the users were put one at a time.

        `solved[i]` false: user i has no vector of its own (impressions only), the trained one
        stands; default all solved. `sums`: (lengths, rows, values), the users' online sums
        per item laid end to end in user order, at most MAX_SEEN each; default none. `shown`:
        per user (item rows, counts), the last MAX_SHOWN kept; default none.

        The slots are chosen first (from this writer's own record of them: it is the table's
        only writer), then written together: every chosen slot's sequence number made odd,
        all fields written, every sequence number made even again. A reader of any of these
        slots in between sees an odd or changed number and reads again (the seqlock)."""
        chosen: dict[int, int] = {}  # slot -> index into the arguments (the last user put there)
        evicted: list[str] = []
        stamps = np.empty(len(user_ids), dtype=np.float64)
        keys = np.empty((len(user_ids), 2), dtype=np.uint64)
        for i, user_id in enumerate(user_ids):
            key = key_of(user_id)
            keys[i] = key
            slot = self._claim(user_id, key[1], evicted)
            stamps[i] = self._writes
            chosen.pop(slot, None)  # a user evicted within this call: only the last one is written
            chosen[slot] = i
        slots = np.fromiter(chosen.keys(), dtype=np.int64, count=len(chosen))
        at = np.fromiter(chosen.values(), dtype=np.int64, count=len(chosen))
        seen = np.zeros((len(at), MAX_SEEN), dtype=np.int32)
        n_seen = np.empty(len(at), dtype=np.uint32)
        for j, i in enumerate(at):
            rows = seen_rows[i][-MAX_SEEN:]
            n_seen[j] = len(rows)
            seen[j, : len(rows)] = rows
        sum_rows, sum_values, n_sums = _padded(sums, len(user_ids))
        shown_rows = np.zeros((len(at), MAX_SHOWN), dtype=np.int32)
        shown_counts = np.zeros((len(at), MAX_SHOWN), dtype=np.uint32)
        n_shown = np.zeros(len(at), dtype=np.uint32)
        if shown is not None:
            for j, i in enumerate(at):
                rows, counts = shown[i]
                if len(rows):  # most users were shown nothing: skip them cheaply
                    n = min(len(rows), MAX_SHOWN)
                    n_shown[j] = n
                    shown_rows[j, :n], shown_counts[j, :n] = rows[-MAX_SHOWN:], counts[-MAX_SHOWN:]
        self._seq[slots] += 1  # odd: being written
        self._key0[slots], self._key1[slots] = keys[at, 0], keys[at, 1]
        self._updated[slots] = stamps[at]
        self._known[slots] = np.asarray(known, dtype=np.uint32)[at]
        self._n_seen[slots] = n_seen
        self._seen[slots] = seen
        self._solved[slots] = 1 if solved is None else np.asarray(solved, dtype=np.uint32)[at]
        self._vector[slots] = vectors[at]
        self._n_sums[slots] = n_sums[at]
        self._sum_rows[slots] = sum_rows[at]
        self._sum_values[slots] = sum_values[at]
        self._n_shown[slots] = n_shown
        self._shown_rows[slots] = shown_rows
        self._shown_counts[slots] = shown_counts
        self._seq[slots] += 1
        return evicted

    def vector_of(self, user_id: str) -> tuple[np.ndarray, bool] | None:
        """The user's slot's (vector, solved), None when it holds no slot: read back from the
        writer's own mapping (it is the only writer), so shown events need no solve."""
        slot = self._slot_of.get(user_id)
        return None if slot is None else (self._vector[slot].copy(), bool(self._solved[slot]))

    def _claim(self, user_id: str, key1: int, evicted: list[str]) -> int:
        """The user's slot, taking an empty or the least recently updated one of its bucket
        (whose user goes to `evicted`); counts one write."""
        self._writes += 1
        slot = self._slot_of.get(user_id)
        if slot is None:
            slot = self._free_or_oldest(_bucket(key1, self._m.buckets) * WAYS)
            gone = self._owner.pop(slot, None)
            if gone is not None:
                del self._slot_of[gone]
                evicted.append(gone)
            self._slot_of[user_id] = slot
            self._owner[slot] = user_id
        self._stamp[slot] = self._writes
        return slot

    def _free_or_oldest(self, first: int) -> int:
        """An empty slot of the bucket starting at `first`, else its least recently updated."""
        stamp = self._stamp
        oldest, oldest_stamp = first, None
        for slot in range(first, first + WAYS):
            if slot not in self._owner:
                return slot
            if oldest_stamp is None or stamp[slot] < oldest_stamp:
                oldest, oldest_stamp = slot, stamp[slot]
        return oldest

    def drop(self, user_id: str) -> None:
        slot = self._slot_of.pop(user_id, None)
        if slot is None:
            return
        del self._owner[slot]
        self._stamp.pop(slot, None)
        self._seq[slot] += 1
        self._key0[slot], self._key1[slot], self._updated[slot] = 0, 0, 0.0
        self._seq[slot] += 1

    def retire(self) -> None:
        self._m.retired_word[0] = 1

    def close(self) -> None:
        del self._seq, self._key0, self._key1, self._updated, self._known, self._n_seen, self._seen, self._vector
        del self._solved, self._n_sums, self._sum_rows, self._sum_values
        del self._n_shown, self._shown_rows, self._shown_counts
        self._m.close()


def _padded(sums: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
            n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, values, lengths) of n users' sums laid end to end, as (n, MAX_SEEN) arrays."""
    rows, values = np.zeros((n, MAX_SEEN), dtype=np.int32), np.zeros((n, MAX_SEEN), dtype=np.float64)
    if sums is None:
        return rows, values, np.zeros(n, dtype=np.uint32)
    lengths = np.asarray(sums[0], dtype=np.int64)
    if len(lengths) and int(lengths.max()) > MAX_SEEN:
        raise ValueError(f"a user's online sums hold at most {MAX_SEEN} items")
    owner = np.repeat(np.arange(n), lengths)
    place = np.arange(len(owner)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    rows[owner, place], values[owner, place] = sums[1], sums[2]
    return rows, values, lengths.astype(np.uint32)


def retire_file(path: pathlib.Path) -> None:
    """Marks a table a previous learner left retired (workers may still map it), and removes it."""
    try:
        mapped = _Mapped(path, writable=True)
    except (OSError, ValueError):
        pass
    else:
        mapped.retired_word[0] = 1
        mapped.close()
    path.unlink(missing_ok=True)


class TableReader:
    """A worker's side: read-only; never blocks the writer."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self._m = _Mapped(path, writable=False)
        self.version = self._m.version

    @property
    def retired(self) -> bool:
        return bool(self._m.retired_word[0])

    def lookup(self, user_id: str) -> Slot | None:
        key0, key1 = key_of(user_id)
        slots = self._m.slots
        first = _bucket(key1, self._m.buckets) * WAYS
        for _ in range(_READ_ATTEMPTS):
            hits = np.flatnonzero(slots["key0"][first : first + WAYS] == key0)
            if not len(hits):
                return None
            slot = first + int(hits[0])
            before = int(slots["seq"][slot])
            if before & 1:
                continue
            row = slots[slot].copy()
            if int(slots["seq"][slot]) != before:
                continue
            if int(row["key0"]) != key0 or int(row["key1"]) != key1:
                return None
            n, sums, shown = int(row["n_seen"]), int(row["n_sums"]), int(row["n_shown"])
            return Slot(row["vector"] if row["solved"] else None, row["seen"][:n].astype(np.int64),
                         bool(row["known"]), row["sum_rows"][:sums].astype(np.int64), row["sum_values"][:sums],
                         row["shown_rows"][:shown].astype(np.int64), row["shown_counts"][:shown].astype(np.int64))
        return None  # the writer kept rewriting this slot: answer from the model this once

    def close(self) -> None:
        self._m.close()
