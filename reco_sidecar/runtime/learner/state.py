"""The learner's state for one served model version: each online user's events, folded
into a vector with the item factors fixed, and written to the shared table.

Which events count: every event newer than the version's `as_of` (older ones are already
in its training data). Which user is kept: the table decides (bucket LRU, table.py); a user
it evicts is forgotten here too, so memory stays within --online-max-users users of at most
MAX_SEEN distinct items each.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from reco_sidecar.engine.model import Model
from reco_sidecar.runtime.learner.table import MAX_SEEN, TableWriter
from reco_sidecar.serving.online import Event


@dataclass(frozen=True)
class _System:
    user_id: str
    a: np.ndarray
    b: np.ndarray
    seen: np.ndarray
    known: bool


@dataclass
class _User:
    # The user's row in this version (None: unknown at training), looked up once.
    row: int | None
    # item id -> (summed weight, the item's row or None), least recently touched first
    items: dict[str, tuple[float, int | None]] = field(default_factory=dict)


class VersionState:
    def __init__(self, model: Model, table: TableWriter) -> None:
        self.model = model
        self.table = table
        self.as_of = model.info.as_of
        self._users: dict[str, _User] = {}
        params = model.info.fold_in
        self._reg = params.get("regularization", 0.1)
        self._alpha = params.get("alpha", 1.0)
        # YtY + reg I: the part of every user's system that does not depend on the user
        self._base = model.yty + self._reg * np.eye(model.yty.shape[0])

    def counts(self, event: Event) -> bool:
        """Whether this version learns from `event` (not already in its training data)."""
        return self.as_of is None or event.time > self.as_of

    def weight(self, event: Event) -> float:
        if event.weight is not None:
            return event.weight
        return self.model.info.event_types.get(event.type, 0.0)

    def add(self, events: Iterable[Event]) -> list[str]:
        """Records the events; returns the users whose vectors must be solved again, the user
        of the newest event last (so that it is the last one any eviction could touch)."""
        touched: dict[str, None] = {}
        for e in events:
            if not self.counts(e):
                continue
            user = self._users.get(e.user_id)
            if user is None:
                user = self._users[e.user_id] = _User(self.model.users.row(e.user_id))
            known = user.items.pop(e.item_id, None)
            if known is None:
                known = (0.0, self.model.items.row(e.item_id))
            user.items[e.item_id] = (known[0] + self.weight(e), known[1])
            while len(user.items) > MAX_SEEN:
                del user.items[next(iter(user.items))]
            touched.pop(e.user_id, None)
            touched[e.user_id] = None
        return list(touched)

    def publish(self, users: Iterable[str]) -> None:
        """Solves the users again, all in one batched solve, and writes them to the table."""
        systems = []
        for user_id in users:
            user = self._users.get(user_id)
            if user is not None:
                system = self._system(user_id, user)
                if system is not None:
                    systems.append(system)
        if not systems:
            return
        a = np.stack([s.a for s in systems])
        b = np.stack([s.b for s in systems])[:, :, None]
        vectors = np.linalg.solve(a, b)[:, :, 0].astype(np.float32)
        for s, vector in zip(systems, vectors, strict=True):
            evicted = self.table.put(s.user_id, vector, s.seen, s.known)
            if evicted is not None:
                self._users.pop(evicted, None)

    def _system(self, user_id: str, user: _User) -> _System | None:
        """The normal equations of the user's vector, as implicit's ALS recalculates a user
        (engine/foldin.py): the user's trained interactions plus the online ones, item factors
        fixed. None when no online item is known to this version."""
        m = self.model
        online_rows = []
        weights: dict[int, float] = {}
        for total, row in user.items.values():
            if row is None:
                continue
            online_rows.append(row)
            weights[row] = weights.get(row, 0.0) + total
        if not online_rows:
            return None
        user_row = user.row
        if user_row is not None:
            for row in m.seen_rows(user_row).tolist():
                weights[row] = weights.get(row, 0.0) + 1.0
        rows = np.fromiter(weights, dtype=np.int64, count=len(weights))
        w = np.fromiter(weights.values(), dtype=np.float64, count=len(weights))
        y = np.asarray(m.item_factors[rows], dtype=np.float64)
        c = np.maximum(self._alpha * w, 1e-6)
        a = self._base + (y.T * (c - 1.0)) @ y
        return _System(user_id, a, c @ y, np.asarray(online_rows, dtype=np.int32), user_row is not None)

    def __len__(self) -> int:
        return len(self._users)
