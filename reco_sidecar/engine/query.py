"""Domain requests: what to rank and what to leave out, in matrix rows (no proto here)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np


class Provenance(enum.Enum):
    """Where a ranked list came from (the proto's `source` field; not a Source of versions)."""

    MODEL = "model"
    FOLD_IN = "fold_in"
    POPULAR = "popular"
    ANN = "ann"
    # An experiment's `random` baseline arm.
    RANDOM = "random"
    # The user's vector as online learning updated it (docs/online.md).
    ONLINE = "online"
    # A user unknown at training, from their feedback events alone.
    ONLINE_NEW_USER = "online_new_user"


@dataclass(frozen=True)
class Restriction:
    """Item rows never to return, an optional allow-list, and an optional mask from metadata.

    keeps() is the one place that applies all three to a list of rows (popular items,
    neighbours, candidate lists); the batched kernel takes exclude_rows and allow_mask as
    its masks instead, since it never holds a list of all rows.
    """

    exclude_rows: np.ndarray
    candidate_rows: np.ndarray | None = None
    # True where the item passes the category/tag filter; None: every item passes.
    allow_mask: np.ndarray | None = None

    @staticmethod
    def none() -> Restriction:
        return Restriction(np.zeros(0, dtype=np.int64))

    def excluding(self, *more: np.ndarray | None) -> Restriction:
        """The same restriction with more rows left out (seen items)."""
        parts = [np.asarray(m, dtype=np.int64) for m in more if m is not None and len(m)]
        if not parts:
            return self
        exclude = np.concatenate([np.asarray(self.exclude_rows, dtype=np.int64), *parts])
        return Restriction(exclude, self.candidate_rows, self.allow_mask)

    def keeps(self, rows: np.ndarray) -> np.ndarray:
        """True for each of `rows` that may be returned."""
        keep = np.ones(len(rows), dtype=bool)
        if self.allow_mask is not None:
            keep &= self.allow_mask[rows]
        if len(self.exclude_rows):
            keep &= ~np.isin(rows, self.exclude_rows)
        if self.candidate_rows is not None:
            keep &= np.isin(rows, self.candidate_rows)
        return keep


@dataclass(frozen=True)
class RecQuery:
    """One user's ranking: by stored row (user_row) or by a solved vector (vector)."""

    offset: int
    n: int
    restriction: Restriction
    user_row: int | None = None
    vector: np.ndarray | None = None
    # Seen items of user_row are left out unless this is set.
    include_seen: bool = False
    # Items to leave out as "seen" for a folded-in user.
    seen_rows: np.ndarray | None = None
    # What the answer says it came from; None: MODEL, or FOLD_IN for a given vector.
    source: Provenance | None = None
    # An online user's (docs/online.md): the events' part of the history `vector` was solved
    # from, (item rows, values summed per item); the trained row's values come on top.
    online_sums: tuple[np.ndarray, np.ndarray] | None = None
    # Items shown to the user, (item rows, times shown since the last engagement with each),
    # for the ranking stage's impressions rule.
    shown: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def k(self) -> int:
        return self.offset + self.n


@dataclass(frozen=True)
class Ranked:
    rows: np.ndarray
    scores: np.ndarray
    source: Provenance
