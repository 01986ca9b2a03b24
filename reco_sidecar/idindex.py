"""External string id <-> matrix row."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


class IdIndex:
    __slots__ = ("ids", "rows")

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.rows = {id_: row for row, id_ in enumerate(ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def row(self, id_: str) -> int | None:
        return self.rows.get(id_)

    def rows_of(self, ids: Iterable[str]) -> tuple[np.ndarray, list[str]]:
        """Rows of the known ids, and the ids that are unknown."""
        rows: list[int] = []
        unknown: list[str] = []
        get = self.rows.get
        for id_ in ids:
            r = get(id_)
            if r is None:
                unknown.append(id_)
            else:
                rows.append(r)
        return np.asarray(rows, dtype=np.int64), unknown
