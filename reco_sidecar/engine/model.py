"""An immutable loaded model version: exact recommendation and ANN similar items.

Everything here works on matrix rows and returns (rows, scores); ids and protos are the
service's business. Recommendation is batch-first: many queries share one matrix product.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from annoy import AnnoyIndex

from reco_sidecar.engine import exactdot, foldin, scoring
from reco_sidecar.engine.eventtypes import EventType
from reco_sidecar.engine.idindex import IdIndex
from reco_sidecar.engine.metadata import ItemCatalog
from reco_sidecar.engine.objective import Objective
from reco_sidecar.engine.query import Provenance, Ranked, RecQuery, Restriction
from reco_sidecar.engine.topk import decode_keys, sort_keys


@dataclass(frozen=True)
class ModelInfo:
    """What the model needs from its artifact's manifest, without knowing the artifact format."""

    algorithm: str
    metrics: dict[str, float]
    fold_in: dict[str, float]
    search_k: int
    # The loss every serving-time solve uses (recent items, online events).
    objective: Objective = field(default_factory=Objective)
    # The interaction types training weighted, by name (empty: the version does not say).
    event_types: Mapping[str, EventType] = field(default_factory=dict)
    # Unix time the training data ends: interactions at or before it are in the factors.
    as_of: float | None = None


@dataclass(frozen=True, eq=False)
class Model:
    """Everything is built by the loader and never changes: requests share it across threads."""

    name: str
    version: int
    path: pathlib.Path
    info: ModelInfo
    user_factors: np.ndarray
    item_factors: np.ndarray
    users: IdIndex
    items: IdIndex
    seen_indptr: np.ndarray
    seen_indices: np.ndarray
    popularity: np.ndarray
    # Item rows in fallback order (most popular first).
    popular_rows: np.ndarray
    ann: AnnoyIndex
    yty: np.ndarray
    catalog: ItemCatalog | None
    # Item factors in descending-norm order for pruned exact scoring: mapped from the
    # artifact, or a private copy as big as item_factors for versions without it.
    norm_order: scoring.NormOrder
    loaded_at: float
    load_seconds: float
    # Exact neighbour table (item rows and cosine), when the artifact has one.
    neighbours: np.ndarray | None = None
    neighbour_scores: np.ndarray | None = None
    # Each seen pair's training value r (type weight x event weight x decay, summed), aligned
    # with seen_indices; None for versions written before it existed (every value is then 1).
    seen_weights: np.ndarray | None = None

    @property
    def factors(self) -> int:
        return int(self.item_factors.shape[1])

    def seen_rows(self, user_row: int) -> np.ndarray:
        return np.asarray(self.seen_indices[self.seen_indptr[user_row] : self.seen_indptr[user_row + 1]])

    def history(self, user_row: int) -> tuple[np.ndarray, np.ndarray]:
        """The user's trained interactions: (item rows int64, values r float64), aligned."""
        start, end = int(self.seen_indptr[user_row]), int(self.seen_indptr[user_row + 1])
        rows = np.asarray(self.seen_indices[start:end], dtype=np.int64)
        if self.seen_weights is None:
            return rows, np.ones(len(rows))
        return rows, np.asarray(self.seen_weights[start:end], dtype=np.float64)

    def solve(self, item_rows: np.ndarray, values: np.ndarray) -> np.ndarray:
        """A user's vector from a whole history (unique rows, values r), item factors fixed."""
        return foldin.solve(self.item_factors, self.yty, item_rows, values, self.info.objective)

    def fold_in(self, item_rows: np.ndarray) -> np.ndarray:
        """A vector from recent items alone, each valued 1 (a CSV interaction's default)."""
        return self.solve(item_rows, np.ones(len(item_rows)))

    # -- recommendation -------------------------------------------------------------------

    def recommend(self, queries: Sequence[RecQuery]) -> list[Ranked]:
        """Exact top-(offset+n) per query; full-catalogue queries are scored together, skipping
        items that cannot make a list (scoring.rank). Each answer is the same whatever other
        queries share the call: scores come from exactdot, ties go to the lower item row."""
        out: list[Ranked | None] = [None] * len(queries)
        at = [i for i, q in enumerate(queries) if q.restriction.candidate_rows is None]
        if at:
            full = [queries[i] for i in at]
            rows, vals, counts = scoring.rank(self.norm_order, self._vectors(full),
                                               np.fromiter((q.k for q in full), dtype=np.int64, count=len(full)),
                                               self._masks(full))
            # the kernel returns no left-out items, so a page is a plain slice
            for j, (i, q, c) in enumerate(zip(at, full, counts.tolist(), strict=True)):
                source = q.source or (Provenance.FOLD_IN if q.vector is not None else Provenance.MODEL)
                out[i] = Ranked(rows[j, q.offset : c], vals[j, q.offset : c], source)
        for i, q in enumerate(queries):
            if out[i] is None:
                out[i] = self._recommend_candidates(q)
        return [r for r in out if r is not None]

    def _vectors(self, queries: Sequence[RecQuery]) -> np.ndarray:
        """Stored users' rows in one gather (row by row from the memory map is slower)."""
        stored = [j for j, q in enumerate(queries) if q.vector is None]
        user_rows = np.fromiter((queries[j].user_row for j in stored), dtype=np.int64, count=len(stored))
        if len(stored) == len(queries):
            return np.asarray(self.user_factors[user_rows], dtype=np.float32)
        vectors = np.empty((len(queries), self.factors), dtype=np.float32)
        vectors[stored] = self.user_factors[user_rows]
        for j, q in enumerate(queries):
            if q.vector is not None:
                vectors[j] = q.vector
        return vectors

    def _vector(self, q: RecQuery) -> np.ndarray:
        if q.vector is not None:
            return q.vector
        assert q.user_row is not None
        return np.asarray(self.user_factors[q.user_row])

    def _masks(self, queries: Sequence[RecQuery]) -> scoring.Masks:
        """Each query's left-out items as (query index, item row) pairs, plus allow-masks."""
        rows: list[np.ndarray] = []
        items: list[np.ndarray] = []
        with_seen = [(j, q.user_row) for j, q in enumerate(queries) if q.user_row is not None and not q.include_seen]
        if with_seen:
            # all stored users' seen items in one gather from the CSR arrays
            js, users = np.array(with_seen, dtype=np.int64).T
            starts, ends = self.seen_indptr[users], self.seen_indptr[users + 1]
            lens = ends - starts
            offsets = np.arange(int(lens.sum())) + np.repeat(starts - (np.cumsum(lens) - lens), lens)
            rows.append(np.repeat(js, lens))
            items.append(np.asarray(self.seen_indices[offsets], dtype=np.int64))
        for j, q in enumerate(queries):
            for extra in (None if q.include_seen else q.seen_rows, q.restriction.exclude_rows):
                if extra is not None and len(extra):
                    rows.append(np.full(len(extra), j, dtype=np.int64))
                    items.append(np.asarray(extra, dtype=np.int64))
        allow = [q.restriction.allow_mask for q in queries]
        if not rows:
            return scoring.Masks.from_pairs(np.zeros(0, np.int64), np.zeros(0, np.int64), allow)
        return scoring.Masks.from_pairs(np.concatenate(rows), np.concatenate(items), allow)

    def _recommend_candidates(self, q: RecQuery) -> Ranked:
        """A candidate list is short: every candidate is scored by exactdot and sorted."""
        cand = np.unique(np.asarray(q.restriction.candidate_rows, dtype=np.int64))
        restriction = q.restriction
        if not q.include_seen:
            restriction = restriction.excluding(None if q.user_row is None else self.seen_rows(q.user_row),
                                                q.seen_rows)
        cand = cand[restriction.keeps(cand)]
        scores = exactdot.one_vector(self._vector(q), self.item_factors[cand])
        keys = np.sort(sort_keys(scores, cand))[q.offset : q.k]
        rows, vals = decode_keys(keys)
        return Ranked(rows, vals, q.source or (Provenance.FOLD_IN if q.vector is not None else Provenance.MODEL))

    def popular(self, offset: int, n: int, restriction: Restriction) -> Ranked:
        """The fallback ranking for users the model does not know."""
        want = offset + n
        # Filtering the whole catalogue for a handful of items was a tenth of an unknown user's
        # request: look at a prefix of the popularity order first, the whole order only if short.
        size = min(len(self.popular_rows), 4 * want + len(restriction.exclude_rows) + 64)
        while True:
            order = self.popular_rows[:size]
            keep = restriction.keeps(order)
            if int(keep.sum()) >= want or size == len(self.popular_rows):
                rows = order[keep][offset:want]
                return Ranked(rows, self.popularity[rows].astype(np.float32), Provenance.POPULAR)
            size = min(len(self.popular_rows), size * 8)

    # -- similar items ----------------------------------------------------------------------

    def similar(self, item_row: int, offset: int, n: int, restriction: Restriction) -> Ranked:
        """Neighbours by cosine, never the item itself, filters applied: from the exact table
        when it holds enough of them, otherwise from the ANN index."""
        total = self.item_factors.shape[0]
        want = offset + n
        if self.neighbours is not None and self.neighbour_scores is not None and restriction.candidate_rows is None:
            r = np.asarray(self.neighbours[item_row], dtype=np.int64)
            keep = restriction.keeps(r)
            if int(keep.sum()) >= want:
                cos = np.asarray(self.neighbour_scores[item_row])
                return Ranked(r[keep][offset:want], cos[keep][offset:want], Provenance.ANN)
        ask = min(total, want + 1 + len(restriction.exclude_rows))
        search_k = self.info.search_k
        while True:
            rows, dists = self.ann.get_nns_by_item(item_row, ask, search_k=search_k, include_distances=True)
            r = np.asarray(rows, dtype=np.int64)
            # annoy's angular distance is sqrt(2 - 2 cos)
            cos = (1.0 - np.square(np.asarray(dists, dtype=np.float64)) / 2.0).astype(np.float32)
            keep = (r != item_row) & restriction.keeps(r)
            r, cos = r[keep], cos[keep]
            if len(r) >= want or ask >= total:
                return Ranked(r[offset:want], cos[offset:want], Provenance.ANN)
            ask = min(total, ask * 4)
