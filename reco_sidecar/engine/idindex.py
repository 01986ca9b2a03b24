"""External string id <-> matrix row."""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np

# Building the map holds the GIL; a reload builds it beside live traffic, so it yields
# between chunks instead of stalling request threads for the whole map.
_CHUNK = 16_384


class IdIndex:
    __slots__ = ("__weakref__", "ids", "rows")

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.rows: dict[str, int] = {}
        for start in range(0, len(ids), _CHUNK):
            self.rows.update(zip(ids[start : start + _CHUNK], range(start, start + _CHUNK), strict=False))
            time.sleep(0)

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
