"""An immutable loaded model version: exact recommendation and ANN similar items.

Everything here works on matrix rows and returns (rows, scores); ids and protos are the
service's business. Recommendation is batch-first: many queries share one matrix product.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from annoy import AnnoyIndex

from reco_sidecar import foldin
from reco_sidecar.artifact.manifest import Manifest
from reco_sidecar.idindex import IdIndex
from reco_sidecar.metadata import ItemCatalog
from reco_sidecar.query import Ranked, RecQuery, Restriction, Source
from reco_sidecar.topk import top_k

NEG_INF = np.float32(-np.inf)


@dataclass(frozen=True, eq=False)
class Model:
    name: str
    version: int
    path: pathlib.Path
    manifest: Manifest
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
    item_norms: np.ndarray
    yty: np.ndarray
    catalog: ItemCatalog | None
    loaded_at: float
    load_seconds: float
    cold_start_vector: np.ndarray | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def factors(self) -> int:
        return int(self.item_factors.shape[1])

    def seen_rows(self, user_row: int) -> np.ndarray:
        return np.asarray(self.seen_indices[self.seen_indptr[user_row] : self.seen_indptr[user_row + 1]])

    def fold_in(self, item_rows: np.ndarray) -> np.ndarray:
        params = self.manifest.fold_in
        return foldin.solve_user(
            self.item_factors,
            self.yty,
            item_rows,
            regularization=params.get("regularization", 0.1),
            alpha=params.get("alpha", 1.0),
        )

    # -- recommendation -------------------------------------------------------------------

    def recommend(self, queries: Sequence[RecQuery]) -> list[Ranked]:
        """Exact top-(offset+n) per query; full-catalogue queries share one matrix product."""
        out: list[Ranked | None] = [None] * len(queries)
        full = [i for i, q in enumerate(queries) if q.restriction.candidate_rows is None]
        if full:
            vectors = np.stack([self._vector(queries[i]) for i in full])
            scores = vectors @ self.item_factors.T
            for j, i in enumerate(full):
                self._mask(scores[j], queries[i])
            kmax = max(queries[i].k for i in full)
            rows, vals = top_k(scores, kmax)
            for j, i in enumerate(full):
                out[i] = self._page(rows[j], vals[j], queries[i])
        for i, q in enumerate(queries):
            if out[i] is None:
                out[i] = self._recommend_candidates(q)
        return [r for r in out if r is not None]

    def _vector(self, q: RecQuery) -> np.ndarray:
        if q.vector is not None:
            return q.vector
        assert q.user_row is not None
        return np.asarray(self.user_factors[q.user_row])

    def _mask(self, row_scores: np.ndarray, q: RecQuery) -> None:
        r = q.restriction
        if q.user_row is not None and not q.include_seen:
            row_scores[self.seen_rows(q.user_row)] = NEG_INF
        if q.seen_rows is not None and not q.include_seen:
            row_scores[q.seen_rows] = NEG_INF
        if len(r.exclude_rows):
            row_scores[r.exclude_rows] = NEG_INF
        if r.allow_mask is not None:
            row_scores[~r.allow_mask] = NEG_INF

    def _page(self, rows: np.ndarray, vals: np.ndarray, q: RecQuery) -> Ranked:
        rows, vals = rows[: q.k], vals[: q.k]
        keep = vals > NEG_INF
        rows, vals = rows[keep][q.offset :], vals[keep][q.offset :]
        return Ranked(rows, vals, Source.FOLD_IN if q.vector is not None else Source.MODEL)

    def _recommend_candidates(self, q: RecQuery) -> Ranked:
        cand = np.unique(np.asarray(q.restriction.candidate_rows, dtype=np.int64))
        scores = np.full(self.item_factors.shape[0], NEG_INF, dtype=np.float32)
        scores[cand] = np.asarray(self.item_factors[cand]) @ self._vector(q)
        self._mask(scores, q)
        rows, vals = top_k(scores[cand][None, :], q.k)
        return self._page(cand[rows[0]], vals[0], q)

    def popular(self, offset: int, n: int, restriction: Restriction) -> Ranked:
        """The fallback ranking for users the model does not know."""
        order = self.popular_rows
        keep = np.ones(len(order), dtype=bool)
        if restriction.allow_mask is not None:
            keep &= restriction.allow_mask[order]
        if len(restriction.exclude_rows):
            keep &= ~np.isin(order, restriction.exclude_rows)
        if restriction.candidate_rows is not None:
            keep &= np.isin(order, restriction.candidate_rows)
        rows = order[keep][offset : offset + n]
        return Ranked(rows, self.popularity[rows].astype(np.float32), Source.POPULAR)

    # -- similar items ----------------------------------------------------------------------

    def similar(self, item_row: int, offset: int, n: int, restriction: Restriction) -> Ranked:
        """Neighbours by cosine from the ANN index, never the item itself, filters applied."""
        total = self.item_factors.shape[0]
        want = offset + n
        ask = min(total, want + 1 + len(restriction.exclude_rows))
        search_k = self.manifest.ann.search_k
        while True:
            rows, dists = self.ann.get_nns_by_item(item_row, ask, search_k=search_k, include_distances=True)
            r = np.asarray(rows, dtype=np.int64)
            # annoy's angular distance is sqrt(2 - 2 cos)
            cos = (1.0 - np.square(np.asarray(dists, dtype=np.float64)) / 2.0).astype(np.float32)
            keep = r != item_row
            if len(restriction.exclude_rows):
                keep &= ~np.isin(r, restriction.exclude_rows)
            if restriction.candidate_rows is not None:
                keep &= np.isin(r, restriction.candidate_rows)
            if restriction.allow_mask is not None:
                keep &= restriction.allow_mask[r]
            r, cos = r[keep], cos[keep]
            if len(r) >= want or ask >= total:
                return Ranked(r[offset:want], cos[offset:want], Source.ANN)
            ask = min(total, ask * 4)
