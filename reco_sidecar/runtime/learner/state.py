"""The learner's state for one served model version: each online user's events, summed per
item with the version's own event types, solved by online/solve.py (exactly as implicit's
ALS recalculates a user, item factors fixed) and written to the shared table.

Which events count: every event newer than the version's `as_of` (older ones are already
in its training data) whose type the version knows. An event of a "shown" type (weight 0,
engine/eventtypes.py) takes no part in the solve: it counts one impression of the item for
the user, and an engagement (an event of a positive type) on the item sets its count back
to 0 (docs/ranking.md, "Impressions"). Which user is kept: the table decides (bucket LRU,
table.py); a user it evicts is forgotten here too, so memory stays within
--online-max-users users of at most MAX_SEEN distinct items and MAX_SHOWN shown items each.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from reco_sidecar.engine import foldin
from reco_sidecar.engine.model import Model
from reco_sidecar.online.events import Event, value_of
from reco_sidecar.online.solve import merge
from reco_sidecar.runtime.learner.table import MAX_SEEN, MAX_SHOWN, Slot, TableWriter

_UNSET = -1


@dataclass
class _User:
    # item id -> (summed value, the item's row in this version or None), least recently
    # touched first
    items: dict[str, tuple[float, int | None]] = field(default_factory=dict)
    # Rows of this version's items an excluding event put in the seen set.
    seen: dict[str, int] = field(default_factory=dict)
    # The user's row in this version (None: unknown at training); _UNSET until looked up.
    row: int | None = _UNSET
    # Rows of this version's items shown to the user -> times shown since the last
    # engagement with it, least recently shown first.
    shown: dict[int, int] = field(default_factory=dict)


class VersionState:
    def __init__(self, model: Model, table: TableWriter) -> None:
        self.model = model
        self.table = table
        self.as_of = model.info.as_of
        self._types = model.info.event_types
        self._users: dict[str, _User] = {}

    def counts(self, event: Event) -> bool:
        """Whether this version learns from `event`: newer than its training data, of a type
        it was trained with."""
        return (self.as_of is None or event.time > self.as_of) and event.type in self._types

    def add(self, events: Iterable[Event]) -> list[str]:
        """Records the events; returns the users whose vectors must be solved again, the user
        of the newest event last (so that it is the last one any eviction could touch)."""
        touched: dict[str, None] = {}
        for e in events:
            if not self.counts(e):
                continue
            user = self._users.get(e.user_id)
            if user is None:
                user = self._users[e.user_id] = _User()
            valued = value_of(e, self._types)
            if valued.shown:
                row = self.model.items.row(e.item_id)
                if row is not None:  # an item this version cannot recommend needs no count
                    user.shown[row] = user.shown.pop(row, 0) + 1
                    while len(user.shown) > MAX_SHOWN:
                        del user.shown[next(iter(user.shown))]
                touched.pop(e.user_id, None)
                touched[e.user_id] = None
                continue
            before = user.items.pop(e.item_id, None)
            total, row = before if before is not None else (0.0, self.model.items.row(e.item_id))
            user.items[e.item_id] = (total + valued.value, row)
            if valued.excludes and row is not None:
                user.seen[e.item_id] = row
            if valued.value > 0 and row is not None:
                user.shown.pop(row, None)  # engaged with: its impressions start again from 0
            while len(user.items) > MAX_SEEN:
                user.seen.pop(next(iter(user.items)), None)
                del user.items[next(iter(user.items))]
            touched.pop(e.user_id, None)
            touched[e.user_id] = None
        return list(touched)

    def publish(self, users: Iterable[str]) -> None:
        """Solves the users again and writes them to the table: each user's history as
        online/solve.py builds it (trained values + the online sums per item), all users of
        the group in one batched solve (engine/foldin.py)."""
        m = self.model
        solved: list[tuple[str, _User]] = []
        histories: list[tuple[np.ndarray, np.ndarray]] = []
        unsolved: list[tuple[str, _User]] = []
        for user_id in users:
            user = self._users.get(user_id)
            if user is None:
                continue
            history = self._history(user_id, user)
            if history is None:
                if user.shown:  # impressions alone: the slot carries the counts, no vector
                    unsolved.append((user_id, user))
                continue
            rows, values, _ = history
            solved.append((user_id, user))
            histories.append((rows, values))
        vectors: list[np.ndarray] = (list(foldin.solve_many(m.item_factors, m.yty, histories, m.info.objective))
                                     if solved else [])
        for (user_id, user), vector in [*zip(solved, vectors, strict=True), *((u, None) for u in unsolved)]:
            evicted = self.table.put(user_id, self._slot(user, vector))
            if evicted is not None:
                self._users.pop(evicted, None)

    def _slot(self, user: _User, vector: np.ndarray | None) -> Slot:
        pairs = sorted((row, total) for total, row in user.items.values() if row is not None)
        return Slot(vector, np.fromiter(user.seen.values(), dtype=np.int32, count=len(user.seen)),
                    user.row is not None,
                    np.fromiter((r for r, _ in pairs), dtype=np.int64, count=len(pairs)),
                    np.fromiter((v for _, v in pairs), dtype=np.float64, count=len(pairs)),
                    np.fromiter(user.shown.keys(), dtype=np.int64, count=len(user.shown)),
                    np.fromiter(user.shown.values(), dtype=np.int64, count=len(user.shown)))

    def _history(self, user_id: str, user: _User) -> tuple[np.ndarray, np.ndarray, bool] | None:
        """(rows, values, known at training) of the user's whole history under this version,
        as online/solve.py's from_totals builds it; None when it leaves nothing to solve."""
        m = self.model
        if user.row is _UNSET:
            user.row = m.users.row(user_id)
        pairs = sorted((row, total) for total, row in user.items.values() if row is not None)
        rows = np.fromiter((r for r, _ in pairs), dtype=np.int64, count=len(pairs))
        values = np.fromiter((v for _, v in pairs), dtype=np.float64, count=len(pairs))
        if user.row is None:
            trained_rows, trained_values = np.zeros(0, dtype=np.int64), np.zeros(0)
        elif not len(rows):
            return None  # nothing new: the version's stored vector stands
        else:
            trained_rows, trained_values = m.history(user.row)
        merged_rows, merged_values = merge(trained_rows, trained_values, rows, values)
        if not len(merged_rows):
            return None
        return merged_rows, merged_values, user.row is not None

    def __len__(self) -> int:
        return len(self._users)
