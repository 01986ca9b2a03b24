"""A worker's side of online learning (serving.online.Online): Feedback's events go to the
learner over one connection, answered in order; lookups read the learner's table for the
exact version being served, mapped read-only."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import pathlib
import threading
import time
from collections.abc import Sequence

from reco_sidecar.common import logs
from reco_sidecar.common.errors import Unavailable
from reco_sidecar.engine.model import Model
from reco_sidecar.runtime import wire as m
from reco_sidecar.runtime.learner.framing import frame, read_frame
from reco_sidecar.runtime.learner.table import TableReader, table_path
from reco_sidecar.serving.online import Accepted, Event, OnlineUser

log = logs.get(__name__)
# How long a Feedback waits for the learner (a restarted learner replays its journal first).
SUBMIT_TIMEOUT = 30.0


# How long a booting worker waits for the learner to publish the served version's table.
BOOT_WAIT = 30.0


def await_table(tables: pathlib.Path, model: str, version: int, timeout: float = BOOT_WAIT) -> bool:
    """True once the learner has published `version`'s table (it replays the journal first);
    False after `timeout`: the worker then serves, answering from trained vectors until it is."""
    path = table_path(tables, model, version)
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


class LearnerClient:
    def __init__(self, address: str, tables: pathlib.Path, model: str) -> None:
        self._address = address
        self._tables = tables
        self._model = model
        self._reader: TableReader | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[m.Fed]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._connecting = asyncio.Lock()
        self._opening = threading.Lock()

    # -- lookups (on the event loop or a scoring thread; never blocks) --------------------------

    def lookup(self, model: Model, user_id: str) -> OnlineUser | None:
        if model.name != self._model:
            return None
        reader = self._table(model.version)
        if reader is None:
            return None
        entry = reader.lookup(user_id)
        if entry is None:
            return None
        return OnlineUser(entry.vector, entry.seen_rows, entry.known, entry.sum_rows, entry.sum_values,
                          entry.shown_rows, entry.shown_counts)

    def _table(self, version: int) -> TableReader | None:
        """Called from the event loop and from BatchRecommend's scoring threads: a replaced
        reader is dropped, not closed, so a thread still reading it keeps its mapping (it is
        unmapped when the last reference goes)."""
        reader = self._reader
        if reader is not None and reader.version == version and not reader.retired:
            return reader
        with self._opening:
            reader = self._reader
            if reader is not None and reader.version == version and not reader.retired:
                return reader
            try:
                reader = TableReader(table_path(self._tables, self._model, version))
            except (OSError, ValueError):
                return None  # not published yet: the learner is still solving this version
            if reader.version != version:
                return None
            self._reader = reader
            return reader

    # -- events ---------------------------------------------------------------------------------

    async def submit(self, events: Sequence[Event]) -> Accepted:
        writer = await self._connection()
        request = next(self._ids)
        answer: asyncio.Future[m.Fed] = asyncio.get_running_loop().create_future()
        self._pending[request] = answer
        try:
            writer.write(frame(m.Feed(request, tuple(events))))
            fed = await asyncio.wait_for(answer, SUBMIT_TIMEOUT)
        except (ConnectionError, TimeoutError) as e:
            raise Unavailable(f"the learner did not answer: {e or 'timed out'}; retry: event ids make it safe",
                              field="events") from None
        finally:
            self._pending.pop(request, None)
        if fed.error:
            raise Unavailable(fed.error, field="events")
        return Accepted(fed.accepted, fed.duplicates)

    async def _connection(self) -> asyncio.StreamWriter:
        async with self._connecting:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            try:
                reader, writer = await asyncio.open_unix_connection(self._address)
            except OSError as e:
                raise Unavailable(f"the learner cannot be reached: {e.strerror}", field="events") from None
            self._writer = writer
            task = asyncio.get_running_loop().create_task(self._answers(reader, writer))
            _tasks.add(task)
            task.add_done_callback(_tasks.discard)
            return writer

    async def _answers(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                fed = m.decode_from_learner(await read_frame(reader))
                waiting = self._pending.get(fed.id)
                if waiting is not None and not waiting.done():
                    waiting.set_result(fed)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError) as e:
            log.warning("online_learner_lost", error=str(e) or type(e).__name__, pending=len(self._pending))
        finally:
            if self._writer is writer:
                self._writer = None
            writer.close()
            for waiting in self._pending.values():
                if not waiting.done():
                    waiting.set_exception(ConnectionError("the learner closed the connection"))

    def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(RuntimeError):
                self._writer.close()
        if self._reader is not None:
            self._reader.close()


_tasks: set[asyncio.Task[None]] = set()
