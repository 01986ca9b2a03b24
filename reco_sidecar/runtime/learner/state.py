"""The learner's state for one served model version: each online user's events, summed per
item with the version's own event types, solved by online/solve.py (exactly as implicit's
ALS recalculates a user, item factors fixed) and written to the shared table.

Which events count: every event newer than the version's `as_of` (older ones are already
in its training data) whose type the version knows. Which user is kept: the table decides
(bucket LRU, table.py); a user it evicts is forgotten here too, so memory stays within
--online-max-users users of at most MAX_SEEN distinct items each.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from reco_sidecar.engine.model import Model
from reco_sidecar.online.events import Event, value_of
from reco_sidecar.online.solve import from_totals
from reco_sidecar.runtime.learner.table import MAX_SEEN, TableWriter


@dataclass
class _User:
    # item id -> (summed value, whether an event of an excluding type put it in the seen set),
    # least recently touched first
    items: dict[str, tuple[float, bool]] = field(default_factory=dict)
    # Rows of this version's items in the seen set, looked up once per item.
    seen: dict[str, int] = field(default_factory=dict)


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
            total, excludes = user.items.pop(e.item_id, (0.0, False))
            user.items[e.item_id] = (total + valued.value, excludes or valued.excludes)
            if valued.excludes and e.item_id not in user.seen:
                row = self.model.items.row(e.item_id)
                if row is not None:
                    user.seen[e.item_id] = row
            while len(user.items) > MAX_SEEN:
                user.seen.pop(next(iter(user.items)), None)
                del user.items[next(iter(user.items))]
            touched.pop(e.user_id, None)
            touched[e.user_id] = None
        return list(touched)

    def publish(self, users: Iterable[str]) -> None:
        """Solves the users again and writes them to the table."""
        m = self.model
        for user_id in users:
            user = self._users.get(user_id)
            if user is None:
                continue
            solved = from_totals(m, user_id, {item: total for item, (total, _) in user.items.items()})
            if solved is None:
                continue
            rows = np.fromiter(user.seen.values(), dtype=np.int32, count=len(user.seen))
            evicted = self.table.put(user_id, solved.vector, rows, not solved.new_user)
            if evicted is not None:
                self._users.pop(evicted, None)

    def __len__(self) -> int:
        return len(self._users)
