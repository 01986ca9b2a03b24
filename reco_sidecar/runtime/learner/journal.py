"""The append-only journal of accepted events: what makes an accepted event survive a worker
kill, a learner kill and a sidecar restart (docs/online.md, "The journal").

One record per event: a 4-byte length, a 4-byte crc32 of the payload, and the payload, a
msgpack array [event_id, user_id, item_id, type, weight or nil, time]. Records are appended
with one write per group of events and, with fsync "always", made durable with fdatasync
before any of them is acknowledged. Reading stops at the first record that is short or
fails its crc (a write torn by a crash); that tail is cut off before appending again.

Retention: compact() rewrites the journal with the newest `keep` events (a temporary file
renamed over it), so the file holds at most about twice --online-retention-events.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import struct
import zlib
from collections.abc import Iterator, Sequence

import msgpack

from reco_sidecar.online.events import Event

_HEAD = struct.Struct(">II")
MAX_RECORD = 1 << 16


def encode(event: Event) -> bytes:
    payload: bytes = msgpack.packb([event.event_id, event.user_id, event.item_id, event.type, event.weight,
                                    event.time])
    return _HEAD.pack(len(payload), zlib.crc32(payload)) + payload


def decode_payload(payload: bytes) -> Event | None:
    try:
        raw = msgpack.unpackb(payload)
        event_id, user_id, item_id, kind, weight, when = raw
        return Event(str(event_id), str(user_id), str(item_id), str(kind),
                     None if weight is None else float(weight), float(when))
    except (ValueError, TypeError, msgpack.UnpackException):
        return None


def records(path: pathlib.Path, end: list[int] | None = None) -> Iterator[Event]:
    """Every whole record in order, read as a stream (the journal may be large). When the
    iteration is done, `end` (if given) holds the byte length of the whole records: where a
    torn tail starts."""
    at = 0
    try:
        f = path.open("rb")
    except FileNotFoundError:
        if end is not None:
            end[:] = [0]
        return
    with f:
        while True:
            head = f.read(_HEAD.size)
            if len(head) < _HEAD.size:
                break
            length, crc = _HEAD.unpack(head)
            if length > MAX_RECORD:
                break
            payload = f.read(length)
            if len(payload) < length or zlib.crc32(payload) != crc:
                break
            event = decode_payload(payload)
            if event is None:
                break
            at += _HEAD.size + length
            yield event
    if end is not None:
        end[:] = [at]


def read(path: pathlib.Path) -> tuple[list[Event], int]:
    """Every whole record, and the byte length they take (where a torn tail starts)."""
    end: list[int] = []
    events = list(records(path, end))
    return events, end[0]


class Journal:
    def __init__(self, path: pathlib.Path, *, fsync: bool) -> None:
        self.path = path
        self.fsync = fsync
        path.parent.mkdir(parents=True, exist_ok=True)
        end: list[int] = []
        self.records = sum(1 for _ in records(path, end))
        self.torn_bytes = 0
        if path.exists() and path.stat().st_size > end[0]:
            self.torn_bytes = path.stat().st_size - end[0]
            os.truncate(path, end[0])
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def append(self, events: Sequence[Event]) -> None:
        data = b"".join(encode(e) for e in events)
        if not data:
            return
        size = os.fstat(self._fd).st_size
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            if self.fsync:
                os.fdatasync(self._fd)
        except OSError:
            # A partial record (a full disk) would end the journal at the next start and hide
            # every record after it: none of these was acknowledged, so take them all back.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, size)
            raise
        self.records += len(events)

    def events(self) -> Iterator[Event]:
        return records(self.path)

    def compact(self, keep: int) -> int:
        """Keeps the newest `keep` events (two streaming passes); returns how many were dropped."""
        total = sum(1 for _ in records(self.path))
        dropped = max(0, total - keep)
        if not dropped:
            return 0
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            for i, e in enumerate(records(self.path)):
                if i >= dropped:
                    f.write(encode(e))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND, 0o600)
        self.records = total - dropped
        return dropped

    def close(self) -> None:
        os.close(self._fd)
