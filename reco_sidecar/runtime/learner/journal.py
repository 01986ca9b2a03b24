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

import os
import pathlib
import struct
import zlib
from collections.abc import Iterator, Sequence

import msgpack

from reco_sidecar.serving.online import Event

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


def read(path: pathlib.Path) -> tuple[list[Event], int]:
    """Every whole record, and the byte length they take (where a torn tail starts)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    events, at = [], 0
    while at + _HEAD.size <= len(data):
        length, crc = _HEAD.unpack_from(data, at)
        end = at + _HEAD.size + length
        if length > MAX_RECORD or end > len(data):
            break
        payload = data[at + _HEAD.size : end]
        event = decode_payload(payload) if zlib.crc32(payload) == crc else None
        if event is None:
            break
        events.append(event)
        at = end
    return events, at


class Journal:
    def __init__(self, path: pathlib.Path, *, fsync: bool) -> None:
        self.path = path
        self.fsync = fsync
        path.parent.mkdir(parents=True, exist_ok=True)
        events, good = read(path)
        self.records = len(events)
        self.torn_bytes = 0
        if path.exists() and path.stat().st_size > good:
            self.torn_bytes = path.stat().st_size - good
            os.truncate(path, good)
        self._replayed = events
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def replayed(self) -> list[Event]:
        """The events found at open (once: the list is handed over, not kept)."""
        events, self._replayed = self._replayed, []
        return events

    def append(self, events: Sequence[Event]) -> None:
        data = b"".join(encode(e) for e in events)
        if not data:
            return
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        if self.fsync:
            os.fdatasync(self._fd)
        self.records += len(events)

    def events(self) -> Iterator[Event]:
        events, _ = read(self.path)
        return iter(events)

    def compact(self, keep: int) -> int:
        """Keeps the newest `keep` events; returns how many were dropped."""
        events, _ = read(self.path)
        dropped = max(0, len(events) - keep)
        if not dropped:
            return 0
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(b"".join(encode(e) for e in events[dropped:]))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND, 0o600)
        self.records = len(events) - dropped
        return dropped

    def close(self) -> None:
        os.close(self._fd)
