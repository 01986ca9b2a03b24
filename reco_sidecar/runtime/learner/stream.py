"""Several replicas (docs/online.md, "The stream"): every accepted event is added to one Redis
Stream, and every replica's learner reads the whole stream from where it last stopped.

An event is added (XADD, trimmed to about --online-stream-maxlen entries) before the local
journal takes it, so an acknowledged event is in the stream; a replica that cannot reach
Redis refuses Feedback with UNAVAILABLE rather than accept what the others would never see.
The reader thread XREADs from the cursor, the id of the last entry this replica journaled
(a file beside the journal, written after the journal): after a restart it resumes there,
and an entry read twice is a duplicate by its event id. Its own events come back the same
way and are duplicates too.
"""

from __future__ import annotations

import math
import os
import pathlib
import threading
from collections.abc import Callable, Sequence
from typing import Any

import msgpack

from reco_sidecar.common import logs
from reco_sidecar.common.ids import id_problem
from reco_sidecar.online.events import MAX_EVENT_WEIGHT, MAX_TIME, Event
from reco_sidecar.runtime.learner import journal
from reco_sidecar.serving import metrics

log = logs.get(__name__)
READ_COUNT = 1000
BLOCK_MS = 1000
RETRY_SECONDS = 1.0
FIELD = b"e"

Deliver = Callable[[list[Event], str], None]


def _sane(e: Event) -> bool:
    """What a worker checks without the version's types, checked again: the stream is
    written by other processes. (A type this version does not know is kept: a later version
    may; the solve skips it.)"""
    return (all(id_problem(v) is None for v in (e.event_id, e.user_id, e.item_id))
            and id_problem(e.type) is None
            and (e.weight is None or (math.isfinite(e.weight) and 0 < e.weight <= MAX_EVENT_WEIGHT))
            and math.isfinite(e.time) and 0 <= e.time <= MAX_TIME)


class EventStream:
    def __init__(self, url: str, key: str, maxlen: int, cursor_path: pathlib.Path) -> None:
        import redis

        self._redis = redis
        # Short timeouts for XADD (a Feedback waits on it); the reader blocks up to BLOCK_MS.
        self._writer: Any = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._reader: Any = redis.Redis.from_url(url, socket_timeout=BLOCK_MS / 1000 + 5,
                                                 socket_connect_timeout=5)
        self.key, self.maxlen = key, maxlen
        self._cursor_path = cursor_path
        self.cursor = self._read_cursor()

    def publish(self, events: Sequence[Event]) -> None:
        """Adds the events to the stream, or raises (redis.RedisError, OSError)."""
        pipe = self._writer.pipeline(transaction=False)
        for e in events:
            payload = msgpack.packb([e.event_id, e.user_id, e.item_id, e.type, e.weight, e.time])
            pipe.xadd(self.key, {FIELD: payload}, maxlen=self.maxlen, approximate=True)
        pipe.execute()

    def save_cursor(self, entry_id: str) -> None:
        """After the entries up to `entry_id` are in the journal."""
        tmp = self._cursor_path.with_name(self._cursor_path.name + ".tmp")
        tmp.write_text(entry_id)
        os.replace(tmp, self._cursor_path)
        self.cursor = entry_id

    def _read_cursor(self) -> str:
        try:
            text = self._cursor_path.read_text().strip()
        except FileNotFoundError:
            return "0-0"
        return text if _is_entry_id(text) else "0-0"

    def follow(self, deliver: Deliver, stop: threading.Event) -> None:
        """Reads until `stop`; `deliver` returns once the events are journaled (the cursor moves
        only then). Redis being away is logged and retried, never fatal."""
        cursor = self.cursor
        self._check_gap(cursor)
        while not stop.is_set():
            try:
                answer = self._reader.xread({self.key: cursor}, count=READ_COUNT, block=BLOCK_MS)
            except (self._redis.RedisError, OSError) as e:
                log.warning("online_stream_unreachable", error=str(e))
                stop.wait(RETRY_SECONDS)
                continue
            for _, entries in answer or ():
                if not entries:
                    continue
                events = []
                for entry_id, fields in entries:
                    event = journal.decode_payload(fields.get(FIELD, b""))
                    if event is None or not _sane(event):
                        log.warning("online_stream_entry_invalid", entry=_text(entry_id))
                        continue
                    events.append(event)
                cursor = _text(entries[-1][0])
                deliver(events, cursor)
            self._measure_lag(cursor)

    def _measure_lag(self, cursor: str) -> None:
        """How far this learner is behind the stream, in the entries' own times (an entry id
        is its XADD time in ms): the newest entry's time less the last journaled one's."""
        try:
            newest = self._reader.xrevrange(self.key, count=1)
        except (self._redis.RedisError, OSError):
            return  # the next XREAD logs it
        behind = _order(_text(newest[0][0]))[0] - _order(cursor)[0] if newest else 0
        metrics.stream_lag(max(0, behind) / 1000)

    def _check_gap(self, cursor: str) -> None:
        """A replica away longer than the stream keeps has missed events: say so."""
        if cursor == "0-0":
            return
        try:
            first = self._writer.xrange(self.key, count=1)
        except (self._redis.RedisError, OSError):
            return
        if first and _order(_text(first[0][0])) > _order(cursor):
            log.error("online_stream_gap", cursor=cursor, first=_text(first[0][0]))

    def close(self) -> None:
        self._writer.close()
        self._reader.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _is_entry_id(text: str) -> bool:
    ms, _, seq = text.partition("-")
    return ms.isdigit() and seq.isdigit()


def _order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def start(stream: EventStream, deliver: Deliver) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=stream.follow, args=(deliver, stop), name="stream", daemon=True)
    thread.start()
    return thread, stop

