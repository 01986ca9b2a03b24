"""Interaction data as a weighted user x item matrix with the external ids of its rows."""

from __future__ import annotations

import csv
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from reco_sidecar.common.errors import InvalidArgument


@dataclass(frozen=True)
class Interactions:
    user_ids: list[str]
    item_ids: list[str]
    # CSR users x items; duplicate (user, item) pairs summed.
    matrix: sp.csr_matrix
    # Unix time of the latest interaction, when the source dates them (the version's as_of).
    latest: float | None = None

    @property
    def seen(self) -> tuple[np.ndarray, np.ndarray]:
        return self.matrix.indptr.astype(np.int64), self.matrix.indices.astype(np.int32)

    def sorted_by_id(self) -> Interactions:
        """The same data with users and items in lexicographic id order."""
        users = sorted(range(len(self.user_ids)), key=self.user_ids.__getitem__)
        items = sorted(range(len(self.item_ids)), key=self.item_ids.__getitem__)
        matrix = self.matrix[users][:, items].tocsr()
        matrix.sort_indices()
        return Interactions([self.user_ids[u] for u in users], [self.item_ids[i] for i in items], matrix,
                            self.latest)

    def popularity(self) -> np.ndarray:
        """Number of distinct users per item."""
        return np.bincount(self.matrix.indices, minlength=len(self.item_ids)).astype(np.float32)


class Builder:
    """Accumulates (user, item, weight) triples, assigning rows in order of first appearance.

    Rows are kept as numpy chunks, not Python lists: millions of interactions would
    otherwise cost tens of bytes each in int and float objects.
    """

    def __init__(self) -> None:
        self._users: dict[str, int] = {}
        self._items: dict[str, int] = {}
        self._chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._u: list[int] = []
        self._i: list[int] = []
        self._w: list[float] = []

    def add(self, user: str, item: str, weight: float) -> None:
        self._u.append(self._users.setdefault(user, len(self._users)))
        self._i.append(self._items.setdefault(item, len(self._items)))
        self._w.append(weight)

    def add_arrays(self, users: Sequence[str], items: Sequence[str], weights: np.ndarray) -> None:
        self._flush()
        self._chunks.append((_rows(self._users, users), _rows(self._items, items),
                             np.asarray(weights, dtype=np.float32)))

    def _flush(self) -> None:
        if self._u:
            self._chunks.append((np.asarray(self._u, dtype=np.int64), np.asarray(self._i, dtype=np.int64),
                                 np.asarray(self._w, dtype=np.float32)))
            self._u, self._i, self._w = [], [], []

    def build(self, latest: float | None = None) -> Interactions:
        self._flush()
        if not self._chunks or not sum(len(c[0]) for c in self._chunks):
            raise InvalidArgument("no interactions to train on", field="interactions")
        u, i, w = (np.concatenate(parts) for parts in zip(*self._chunks, strict=True))
        coo = sp.coo_matrix((w, (u, i)), shape=(len(self._users), len(self._items)))
        matrix = coo.tocsr()
        matrix.sum_duplicates()
        matrix.sort_indices()
        return Interactions(list(self._users), list(self._items), matrix, latest)


def _rows(index: dict[str, int], ids: Sequence[str]) -> np.ndarray:
    """Rows of ids, new ids appended to the index in order of first appearance."""
    # Known ids are looked up in C; only a batch with new ids pays for a Python loop.
    rows: list[int | None] = list(map(index.get, ids))
    if None in rows:
        for k, r in enumerate(rows):
            if r is None:
                rows[k] = index.setdefault(ids[k], len(index))
    return np.array(rows, dtype=np.int64)


def read_csv(path: pathlib.Path, *, until: float | None = None) -> Interactions:
    """CSV with header user_id,item_id[,weight][,timestamp]; weight defaults to 1.

    timestamp is Unix seconds. With `until`, rows dated after it are left out (undated rows
    stay); the data's `latest` is the latest time read (or `until` when given).
    """
    b = Builder()
    latest: float | None = None
    with pathlib.Path(path).open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or header[:2] != ["user_id", "item_id"]:
            raise InvalidArgument(f"{path}: header must start with user_id,item_id (got {header})",
                                  field="interactions")
        has_weight = len(header) > 2 and header[2] == "weight"
        at = header.index("timestamp") if "timestamp" in header[2:] else None
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            if at is not None and len(row) > at and row[at] != "":
                try:
                    when = float(row[at])
                except ValueError:
                    raise InvalidArgument(f"{path}:{lineno}: timestamp {row[at]!r} is not Unix seconds",
                                          field="interactions") from None
                if until is not None and when > until:
                    continue
                latest = when if latest is None else max(latest, when)
            try:
                w = float(row[2]) if has_weight and len(row) > 2 and row[2] != "" else 1.0
            except ValueError:
                raise InvalidArgument(f"{path}:{lineno}: weight {row[2]!r} is not a number",
                                      field="interactions") from None
            b.add(row[0], row[1], w)
    return b.build(until if until is not None else latest)


def read_item_metadata(path: pathlib.Path, item_ids: list[str]) -> tuple[list[str], list[list[str]]]:
    """CSV item_id,category,tags ('|'-separated); items absent from it get no category or tags."""
    cats: dict[str, str] = {}
    tags: dict[str, list[str]] = {}
    with pathlib.Path(path).open(newline="") as f:
        for row in csv.DictReader(f):
            cats[row["item_id"]] = row.get("category") or ""
            tags[row["item_id"]] = [t for t in (row.get("tags") or "").split("|") if t]
    return [cats.get(i, "") for i in item_ids], [tags.get(i, []) for i in item_ids]
