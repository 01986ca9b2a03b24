"""The learner's state for one served model version: each online user's events, summed per
item with the version's own event types, solved by online/solve.py (exactly as implicit's
ALS recalculates a user, item factors fixed) and written to the shared table.

Which events count: every event newer than the version's `as_of` (older ones are already
in its training data) whose type the version knows. An event of a "shown" type (weight 0,
engine/eventtypes.py) takes no part in the solve: it counts one impression of the item for
the user, and an engagement (an event of positive value) on the item sets its count back
to 0 (docs/ranking.md, "Impressions"). A user touched by shown events only is not solved
again: only the slot's shown counts are rewritten. Which user is kept: the table decides
(bucket LRU, table.py); a user it evicts is forgotten here too, so memory stays within
--online-max-users users of at most MAX_SEEN distinct items and MAX_SHOWN shown items each.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from reco_sidecar.engine import foldin
from reco_sidecar.engine.model import Model
from reco_sidecar.online import sums
from reco_sidecar.online.events import Event
from reco_sidecar.runtime.learner.table import MAX_SEEN, MAX_SHOWN, TableWriter

_UNSET = -1
# Events recorded, and users solved, per pass: a group's worth at a time, so that replaying a
# long journal at start never builds one system per online user at once.
CHUNK = 1024


@dataclass
class _User:
    # item id -> (the values summed so far, exactly (online/sums.py), the item's row in this
    # version or None), least recently touched first
    items: dict[str, tuple[sums.Partials, int | None]] = field(default_factory=dict)
    # Rows of this version's items an excluding event put in the seen set.
    seen: dict[str, int] = field(default_factory=dict)
    # The user's row in this version (None: unknown at training); _UNSET until looked up.
    row: int | None = _UNSET
    # Rows of this version's items shown to the user -> times shown since the last
    # engagement with it, least recently shown first.
    shown: dict[int, int] = field(default_factory=dict)
    # Whether an interaction arrived since the user was last solved (shown events alone
    # leave the vector as it is).
    stale: bool = False


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
        stream = iter(events)
        while chunk := list(itertools.islice(stream, CHUNK)):
            self._add(chunk, touched)
        return list(touched)

    def _add(self, events: list[Event], touched: dict[str, None]) -> None:
        counted = [e for e in events if self.counts(e)]
        # item rows of the items new to their user, found all at once
        fresh = list(dict.fromkeys(e.item_id for e in counted
                                   if (u := self._users.get(e.user_id)) is None or e.item_id not in u.items))
        rows = dict(zip(fresh, self.model.items.rows_or_none(fresh), strict=True))
        types = self._types
        for e in counted:
            user = self._users.get(e.user_id)
            if user is None:
                user = self._users[e.user_id] = _User()
            kind = types[e.type]
            touched.pop(e.user_id, None)
            touched[e.user_id] = None
            if kind.weight == 0:  # shown: one impression, no interaction
                known = user.items.get(e.item_id)
                row = known[1] if known is not None else (
                    rows[e.item_id] if e.item_id in rows else self.model.items.row(e.item_id))
                if row is not None:  # an item this version cannot recommend needs no count
                    user.shown[row] = user.shown.pop(row, 0) + 1
                    if len(user.shown) > MAX_SHOWN:
                        del user.shown[next(iter(user.shown))]
                continue
            user.stale = True
            # value_of's value, inline: the type's weight times the event's own (1 unset)
            value = kind.weight * (1.0 if e.weight is None else e.weight)
            before = user.items.pop(e.item_id, None)
            if before is not None:
                summed, row = before
            else:  # (an item trimmed from the user earlier in this chunk was not looked up)
                summed, row = sums.ZERO, rows[e.item_id] if e.item_id in rows else self.model.items.row(e.item_id)
            # exact: the same total whatever order this process received the events in
            user.items[e.item_id] = (sums.add(summed, value), row)
            if kind.excludes and row is not None:
                user.seen[e.item_id] = row
            if user.shown and value > 0 and row is not None:
                user.shown.pop(row, None)  # engaged with: its impressions start again from 0
            while len(user.items) > MAX_SEEN:
                user.seen.pop(next(iter(user.items)), None)
                del user.items[next(iter(user.items))]

    def publish(self, users: Iterable[str]) -> None:
        """Solves the users again and writes them to the table: each user's history as
        online/solve.py's `merge` builds it (trained values + the online sums per item), for
        all users of the group at once (engine/foldin.py's solve_flat), then one table write.

        A known user with no online value on a known item keeps the version's stored vector
        (nothing is written unless it was shown items: then its slot says "no vector of its
        own" and carries the counts); a user left with no item at all has no vector. A user
        touched by shown events only keeps its slot's vector: just the counts are rewritten."""
        order = list(users)
        for start in range(0, len(order), CHUNK):
            self._publish(order[start : start + CHUNK])

    def _publish(self, users: list[str]) -> None:
        m = self.model
        unset = [u for u in users if (user := self._users.get(u)) is not None and user.row is _UNSET]
        for user_id, row in zip(unset, m.users.rows_or_none(unset), strict=True):
            self._users[user_id].row = row
        # The users whose slots are written, in the group's order (the newest event's user
        # last, so that no write of this group evicts it), and what each one's vector is:
        # solved now, kept from its slot (shown events only), or none (impressions alone).
        picked: list[tuple[str, _User]] = []
        to_solve: list[int] = []  # indices into picked
        kept: dict[int, tuple[np.ndarray, bool]] = {}  # index -> (slot's vector, solved)
        trained: list[int] = []  # the user rows of the users to solve known at training
        trained_at: list[int] = []  # and their places in `to_solve`
        owner: list[int] = []  # the online sums of every picked user, (index, row, value)
        rows: list[int] = []
        values: list[float] = []
        for user_id in users:
            user = self._users.get(user_id)
            if user is None:
                continue
            at = len(picked)
            before = len(rows)
            for summed, row in user.items.values():
                if row is not None:
                    rows.append(row)
                    values.append(sums.total(summed))
            owner.extend([at] * (len(rows) - before))
            if not user.stale:  # shown events only: the slot's vector stands, no solve
                current = self.table.vector_of(user_id)
                if current is not None:
                    kept[at] = current
                elif not user.shown:
                    del owner[before:], rows[before:], values[before:]
                    continue
            elif len(rows) == before and user.row is not None and not user.shown:
                del owner[before:], rows[before:], values[before:]
                continue  # nothing new: the version's stored vector stands
            elif len(rows) > before or user.row is None:
                if user.row is not None:
                    trained.append(user.row)
                    trained_at.append(len(to_solve))
                to_solve.append(at)
            user.stale = False
            picked.append((user_id, user))
        if not picked:
            return
        vectors = np.zeros((len(picked), m.factors), dtype=np.float32)
        solved = np.zeros(len(picked), dtype=bool)
        for at, (vector, was_solved) in kept.items():
            vectors[at], solved[at] = vector, was_solved
        sums_owner, sums_rows, sums_values = (np.asarray(owner, dtype=np.int64), np.asarray(rows, dtype=np.int64),
                                              np.asarray(values, dtype=np.float64))
        if to_solve:
            index = np.asarray(to_solve, dtype=np.int64)
            place = np.full(len(picked), -1, dtype=np.int64)
            place[index] = np.arange(len(index))
            mine = place[sums_owner] >= 0
            flat_rows, flat_values, lengths = self._merged(
                np.asarray(trained, dtype=np.int64), np.asarray(trained_at, dtype=np.int64),
                place[sums_owner[mine]], sums_rows[mine], sums_values[mine], len(index))
            solved_now = foldin.solve_flat(m.item_factors, m.yty, flat_rows, flat_values, lengths, m.info.objective)
            vectors[index] = solved_now
            solved[index] = lengths > 0
        # a user left with no item and shown nothing has nothing to write
        written = np.flatnonzero(solved | np.fromiter((bool(u.shown) for _, u in picked), dtype=bool,
                                                      count=len(picked)))
        keep = np.isin(sums_owner, written)
        evicted = self.table.put_many(
            [picked[i][0] for i in written], vectors[written],
            [np.fromiter(picked[i][1].seen.values(), dtype=np.int32, count=len(picked[i][1].seen)) for i in written],
            [picked[i][1].row is not None for i in written], solved=solved[written],
            sums=(np.bincount(sums_owner[keep], minlength=len(picked))[written], sums_rows[keep], sums_values[keep]),
            shown=[_shown(picked[i][1]) for i in written])
        for user_id in evicted:
            self._users.pop(user_id, None)

    def _merged(self, trained: np.ndarray, trained_at: np.ndarray, owner: np.ndarray, rows: np.ndarray,
                values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every picked user's whole history, laid end to end in user order: unique item rows
        ascending, each valued trained value + online sum (online/solve.py's `merge`, for many
        users at once), and each user's length. `trained` are the known users' rows in the
        version, `trained_at` their indices; (owner, rows, values) the online sums."""
        m = self.model
        starts = np.asarray(m.seen_indptr[trained], dtype=np.int64)
        counts = np.asarray(m.seen_indptr[trained + 1], dtype=np.int64) - starts
        # positions of every known user's trained entries in the CSR arrays, user after user
        offsets = np.cumsum(counts) - counts
        flat = np.repeat(starts - offsets, counts) + np.arange(int(counts.sum()), dtype=np.int64)
        t_rows = np.asarray(m.seen_indices[flat], dtype=np.int64)
        t_values = (np.ones(len(flat)) if m.seen_weights is None
                    else np.asarray(m.seen_weights[flat], dtype=np.float64))
        all_owner = np.concatenate([np.repeat(trained_at, counts), owner])
        all_rows = np.concatenate([t_rows, rows])
        all_values = np.concatenate([t_values, values])
        # by user, then item row; the trained value before the online one (a stable sort on
        # entries laid out trained first), so each sum is taken in merge's order
        order = np.lexsort((all_rows, all_owner))
        all_owner, all_rows, all_values = all_owner[order], all_rows[order], all_values[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = (all_owner[1:] != all_owner[:-1]) | (all_rows[1:] != all_rows[:-1])
        runs = np.flatnonzero(first)
        summed = np.add.reduceat(all_values, runs) if len(runs) else all_values
        merged_owner = all_owner[runs]
        return all_rows[runs], summed, np.bincount(merged_owner, minlength=n).astype(np.int64)

    def __len__(self) -> int:
        return len(self._users)


def _shown(user: _User) -> tuple[np.ndarray, np.ndarray]:
    """The user's shown counts as (item rows, counts), least recently shown first."""
    n = len(user.shown)
    return (np.fromiter(user.shown.keys(), dtype=np.int64, count=n),
            np.fromiter(user.shown.values(), dtype=np.int64, count=n))
