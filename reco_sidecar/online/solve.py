"""A user's vector from their trained interactions plus their online events, item factors
fixed: exactly the system implicit 0.7's ALS solves when it recalculates a user
(`recommend(..., recalculate_user=True)`, `partial_fit_users`), under the version's recorded
objective (engine/objective.py; the one solver is engine/foldin.py).

The user's values are summed per item, as training sums an interaction log into its matrix:
trained value (the version's seen weights) + the exact sum of the new events' values
(online/sums.py), so the total does not depend on the order the events arrived in. So the
item rows and values handed to the solve are the row of the matrix the next training would
see, and the vector is what implicit would give that row.

- A user the version does not know gets a vector from their events alone (`new_user`).
- Events on items the version does not know are kept in the history (a later version may
  know the item) but take no part here; so are events whose type the version does not know.
- Events at or before the version's `as_of` are dropped: the version learned them.
- A user left with no item at all has no vector (None): the caller serves the popular list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from reco_sidecar.engine.model import Model
from reco_sidecar.online import sums
from reco_sidecar.online.events import value_of
from reco_sidecar.online.history import UserHistory


@dataclass(frozen=True)
class OnlineUser:
    vector: np.ndarray  # float32 (factors,)
    # The history the vector solves: unique item rows (ascending) and their summed values.
    rows: np.ndarray
    values: np.ndarray
    # Item rows online events put in the seen set (beyond the version's own seen items).
    excluded: np.ndarray
    # The version did not know the user: the vector comes from events alone.
    new_user: bool
    # Events that took part (known type and item, after as_of).
    applied: int


@dataclass(frozen=True)
class Contributions:
    """The events' part of a history, in item rows of one version."""

    rows: np.ndarray  # int64, one per applied event, in history order
    values: np.ndarray  # float64, aligned
    excluded: np.ndarray  # int64 unique rows


def contributions(model: Model, history: UserHistory) -> Contributions:
    types = model.info.event_types
    live = history.after(model.info.as_of).events
    # A shown type (weight 0) is an impression, not an interaction: it takes no part in a solve.
    found = [(e, model.items.row(e.item_id)) for e in live if e.type in types and types[e.type].weight != 0]
    known = [(e, r) for e, r in found if r is not None]
    rows = np.fromiter((r for _, r in known), dtype=np.int64, count=len(known))
    valued = [value_of(e, types) for e, _ in known]
    values = np.fromiter((v.value for v in valued), dtype=np.float64, count=len(valued))
    excluded = np.unique(rows[np.fromiter((v.excludes for v in valued), dtype=bool, count=len(valued))])
    return Contributions(rows, values, excluded)


def merge(trained_rows: np.ndarray, trained_values: np.ndarray, event_rows: np.ndarray,
          event_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique item rows (ascending), each valued trained value + the exact sum of its event
    values (online/sums.py: the same whatever order the events came in), as the learner
    values them (runtime/learner/state.py)."""
    rows = np.unique(np.concatenate([np.asarray(trained_rows, dtype=np.int64),
                                     np.asarray(event_rows, dtype=np.int64)]))
    values = np.zeros(len(rows), dtype=np.float64)
    np.add.at(values, np.searchsorted(rows, trained_rows), np.asarray(trained_values, dtype=np.float64))
    by_row: dict[int, list[float]] = {}
    for row, value in zip(np.asarray(event_rows).tolist(), np.asarray(event_values, dtype=np.float64).tolist(),
                          strict=True):
        by_row.setdefault(row, []).append(value)
    if by_row:
        at = np.searchsorted(rows, np.fromiter(by_row, dtype=np.int64, count=len(by_row)))
        values[at] += np.fromiter((sums.exact(v) for v in by_row.values()), dtype=np.float64, count=len(by_row))
    return rows, values


def recalculate(model: Model, history: UserHistory) -> OnlineUser | None:
    """The user's online vector under `model`, or None when nothing is left to solve from
    (no trained items and no usable event)."""
    return _solve(model, history.user_id, contributions(model, history))


def from_totals(model: Model, user_id: str, totals: Mapping[str, float]) -> OnlineUser | None:
    """The same solve for a caller that keeps per-item sums of the user's online values
    (item id -> summed value, already valued with the version's types and filtered by its
    as_of) instead of the events. Items the version does not know take no part; `excluded`
    is left empty (which items left the list is the caller's record)."""
    pairs = [(model.items.row(item), value) for item, value in totals.items()]
    known = sorted((r, v) for r, v in pairs if r is not None)
    rows = np.fromiter((r for r, _ in known), dtype=np.int64, count=len(known))
    values = np.fromiter((v for _, v in known), dtype=np.float64, count=len(known))
    return _solve(model, user_id, Contributions(rows, values, np.zeros(0, dtype=np.int64)))


def _solve(model: Model, user_id: str, part: Contributions) -> OnlineUser | None:
    user_row = model.users.row(user_id)
    if user_row is None:
        trained_rows, trained_values = np.zeros(0, dtype=np.int64), np.zeros(0)
    else:
        trained_rows, trained_values = model.history(user_row)
    if not len(part.rows) and user_row is not None:
        # nothing new: the version's stored vector stands (the trained answer for this user)
        return None
    rows, values = merge(trained_rows, trained_values, part.rows, part.values)
    if not len(rows):
        return None
    return OnlineUser(model.solve(rows, values), rows, values, part.excluded, user_row is None, len(part.rows))
