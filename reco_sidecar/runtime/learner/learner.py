"""The learner's work, without the process around it: dedupe by event id, journal, solve,
publish. One instance, in the learner process; the only writer of the journal and tables.

Order for each group of Feed messages (group commit): the events not seen before are
appended to the journal (and fdatasync'ed with --online-fsync always), then applied to the
served version's state and its table, then every Feed of the group is answered. So an
acknowledged event is both durable and visible to every worker.

A version a reload brings is solved in three steps, so that Feedback is answered meanwhile:
`begin` (on the learner's loop) cuts the journal at its current length; `solve` (on a thread
of its own) solves every user from the records before the cut into a new, unpublished
table, while the loop goes on accepting events, which `_record` keeps for it; `finish` (on
the loop again) applies those and publishes the table. Each event reaches the new version
exactly once: from the journal if it came before the cut, from the kept list if after.
"""

from __future__ import annotations

import itertools
import pathlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from reco_sidecar.artifact import loader
from reco_sidecar.common import logs
from reco_sidecar.online.events import Event
from reco_sidecar.runtime import wire as m
from reco_sidecar.runtime.learner.journal import Journal
from reco_sidecar.runtime.learner.state import VersionState
from reco_sidecar.runtime.learner.table import TableWriter, retire_file, table_path

log = logs.get(__name__)


class Learner:
    def __init__(self, *, model_root: pathlib.Path, model: str, directory: pathlib.Path, max_users: int,
                 retention: int, fsync: bool, publish: Callable[[Sequence[Event]], None] | None = None) -> None:
        # With replicas, adds accepted events to the shared stream (stream.py) before the journal.
        self.publish = publish
        self.model_root, self.model_name = model_root, model
        self.tables = directory / "tables"
        self.tables.mkdir(parents=True, exist_ok=True)
        self.max_users, self.retention = max_users, retention
        self.journal = Journal(directory / "journal", fsync=fsync)
        if self.journal.torn_bytes:
            log.warning("online_journal_torn", bytes=self.journal.torn_bytes)
        # Every retained event id: a retry or a replay of any of them is a duplicate.
        self.ids: dict[str, None] = dict.fromkeys(e.event_id for e in self.journal.events())
        log.info("online_journal_replayed", events=len(self.ids))
        # The serving version's state, and during a reload the next version's beside it.
        self.states: dict[int, VersionState] = {}
        # Versions being solved off the loop, each with the events accepted since its cut.
        self.building: dict[int, list[Event]] = {}
        for stale in self.tables.glob("*.table*"):  # a previous learner's: rebuilt from the journal
            retire_file(stale)

    def serve(self, version: int, *, exclusive: bool = True) -> None:
        """Solves every user against `version` from the journal's events after its as_of and
        publishes its table (unless it has one already), all at once: at start, before the
        learner answers anyone. `exclusive`: only `version` serves now, the other tables are
        retired; otherwise it is learned beside them (a reload to it is under way)."""
        cut = self.begin(version)
        if cut is not None:
            try:
                solved = self.solve(version, cut)
            except BaseException:
                self.abandon(version)
                raise
            self.finish(version, solved)
        self.settle(version, exclusive=exclusive)

    def begin(self, version: int) -> int | None:
        """Starts learning `version` beside the others: the journal's length now (what `solve`
        reads), or None when the version is learned already."""
        if version in self.states or version in self.building:
            return None
        self.building[version] = []
        return self.journal.records

    def solve(self, version: int, cut: int) -> Solved:
        """Off the loop: touches nothing the loop uses but the journal's file, read through
        its own descriptor up to `cut` records (appends past them are not read, and no
        compaction runs while a version is being built)."""
        started = time.monotonic()
        model = loader.open_model(self.model_root / self.model_name / str(version))
        table = TableWriter(table_path(self.tables, self.model_name, version), version, model.factors,
                            self.max_users)
        state = VersionState(model, table)
        counted = _Counted(itertools.islice(self.journal.events(), cut), state.counts)
        state.publish(state.add(counted))
        return Solved(state, counted.seen, counted.applied, started)

    def finish(self, version: int, solved: Solved) -> None:
        """On the loop: the events accepted while `solve` ran, then the table is published."""
        kept = self.building.pop(version, [])
        state = solved.state
        if kept:
            state.publish(state.add(kept))
        stale = self.states.pop(version, None)
        state.table.publish()
        if stale is not None:
            stale.table.retire()
        self.states[version] = state
        log.info("online_version", model=self.model_name, version=version, users=len(state),
                 events=solved.seen + len(kept), applied=solved.applied + sum(map(state.counts, kept)),
                 during_solve=len(kept),
                 as_of=state.model.info.as_of, seconds=round(time.monotonic() - solved.started, 4))

    def abandon(self, version: int) -> None:
        """`solve` failed: the events kept for it are dropped (the journal has them)."""
        self.building.pop(version, None)

    def settle(self, version: int, *, exclusive: bool) -> None:
        """With `exclusive`, only `version` serves now: the other tables are retired (when it
        could not be learned, the old ones keep serving)."""
        if not exclusive or version not in self.states:
            return
        for other in [v for v in self.states if v != version]:
            state = self.states.pop(other)
            state.table.retire()
            state.table.close()
            state.table.path.unlink(missing_ok=True)

    def absorb(self, events: Sequence[Event]) -> int:
        """Events another replica accepted (read from the stream): journaled and learned like
        this replica's own, never published again. Returns how many were new."""
        fresh = []
        for e in events:
            if e.event_id not in self.ids:
                self.ids[e.event_id] = None
                fresh.append(e)
        self._record(fresh)
        return len(fresh)

    def _record(self, fresh: Sequence[Event]) -> None:
        self.journal.append(fresh)
        for state in self.states.values():
            state.publish(state.add(fresh))
        for kept in self.building.values():
            kept.extend(fresh)
        if self.journal.records > 2 * self.retention and not self.building:
            self._compact()

    def feed(self, feeds: Sequence[m.Feed]) -> list[m.Fed]:
        fresh: list[Event] = []
        counts: list[tuple[int, int]] = []
        for f in feeds:
            accepted = duplicates = 0
            for e in f.events:
                if e.event_id in self.ids:
                    duplicates += 1
                    continue
                self.ids[e.event_id] = None
                fresh.append(e)
                accepted += 1
            counts.append((accepted, duplicates))
        if fresh and self.publish is not None:
            try:
                self.publish(fresh)
            except Exception as error:  # redis raises its own hierarchy, and OSError
                for e in fresh:
                    self.ids.pop(e.event_id, None)
                log.error("online_stream_failed", error=str(error), events=len(fresh))
                return [m.Fed(f.id, 0, 0, f"the event stream cannot be written: {error}") for f in feeds]
        try:
            self._record(fresh)
        except OSError as error:
            for e in fresh:
                self.ids.pop(e.event_id, None)
            log.error("online_journal_failed", error=str(error), events=len(fresh))
            return [m.Fed(f.id, 0, 0, f"the journal cannot be written: {error.strerror}") for f in feeds]
        return [m.Fed(f.id, a, d, "") for f, (a, d) in zip(feeds, counts, strict=True)]

    def _compact(self) -> None:
        dropped = self.journal.compact(self.retention)
        self.ids = dict.fromkeys(e.event_id for e in self.journal.events())
        log.info("online_journal_compacted", dropped=dropped, kept=self.journal.records)

    def close(self) -> None:
        self.journal.close()
        for state in self.states.values():
            state.table.close()


@dataclass(frozen=True)
class Solved:
    """A version's state solved from the journal, its table not yet published."""

    state: VersionState
    seen: int  # journal records read
    applied: int  # of them, those this version learns from
    started: float


class _Counted:
    """Events passed through, counted (all, and those `counts` keeps), for the log line."""

    def __init__(self, events: Iterator[Event], counts: Callable[[Event], bool]) -> None:
        self._events, self._counts = events, counts
        self.seen = self.applied = 0

    def __iter__(self) -> Iterator[Event]:
        for e in self._events:
            self.seen += 1
            self.applied += self._counts(e)
            yield e
