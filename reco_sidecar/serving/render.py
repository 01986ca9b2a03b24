"""Ranked candidates to the page a client gets: scored items with their 1-based ranks, the
JSON-LD ItemList, and the response messages of Recommend and Similar. Unfiltered popular
fallback pages are rendered once per model version and reused. Nothing here ranks or
chooses: what is rendered is decided before (retrieval, and later any re-ranking stage)."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

from reco_sidecar.engine.model import Model
from reco_sidecar.engine.query import Provenance, Ranked, Restriction
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.serving.jsonld import Renderer

SOURCE_PB = {
    Provenance.RANDOM: reco_pb2.SOURCE_RANDOM,
    Provenance.MODEL: reco_pb2.SOURCE_MODEL,
    Provenance.FOLD_IN: reco_pb2.SOURCE_FOLD_IN,
    Provenance.POPULAR: reco_pb2.SOURCE_POPULAR,
    Provenance.ANN: reco_pb2.SOURCE_ANN,
    Provenance.ONLINE: reco_pb2.SOURCE_ONLINE,
    Provenance.ONLINE_NEW_USER: reco_pb2.SOURCE_ONLINE_NEW_USER,
}
# SOURCE_NAME[s], not s.value: Enum.value is a property call, on every response.
SOURCE_NAME = {source: source.value for source in Provenance}
SOURCE_OF = {pb: source for source, pb in SOURCE_PB.items()}
# Popular answers kept per model version: (offset, n) pairs are few in practice; the bound
# only stops a client walking every page from growing the cache without end.
POPULAR_CACHE_LIMIT = 1024


@dataclass(frozen=True)
class PopularPage:
    """An unfiltered fallback page, rendered once per model version."""

    ranked: Ranked
    items: list[reco_pb2.ScoredItem]
    jsonld: str


# What retrieval hands the page: a ranking to render, or a popular page rendered already.
Candidates = Ranked | PopularPage
# Sets reasons and pin marks on a page's items; returns the reasons for the JSON-LD, or None.
Decorate = Callable[[list[reco_pb2.ScoredItem]], list[list[tuple[str, float]]] | None]


def unrestricted(r: Restriction) -> bool:
    return not len(r.exclude_rows) and r.candidate_rows is None and r.allow_mask is None


class Pages:
    def __init__(self, renderer: Renderer) -> None:
        self._renderer = renderer
        self._popular: weakref.WeakKeyDictionary[Model, dict[tuple[int, int], PopularPage]] = \
            weakref.WeakKeyDictionary()

    def items(self, model: Model, ranked: Ranked, offset: int) -> list[reco_pb2.ScoredItem]:
        ids = model.items.ids
        return [
            reco_pb2.ScoredItem(item_id=ids[row], score=score, rank=offset + i)
            for i, (row, score) in enumerate(zip(ranked.rows.tolist(), ranked.scores.tolist(), strict=True),
                                             start=1)
        ]

    def jsonld(self, model: Model, ranked: Ranked, offset: int, about: str | None = None,
               experiment: str = "", arm: str = "", reasons: list[list[tuple[str, float]]] | None = None) -> str:
        ids = model.items.ids
        return self._renderer.render(
            model=model.name, version=model.version, source=SOURCE_NAME[ranked.source],
            item_ids=[ids[r] for r in ranked.rows.tolist()], scores=ranked.scores.tolist(),
            first_position=offset + 1, about=about, experiment=experiment, arm=arm, reasons=reasons,
        )

    def popular(self, model: Model, offset: int, n: int, restriction: Restriction) -> Candidates:
        """An unfiltered page from the per-version cache (rendered on first use); a filtered
        one ranked for this call."""
        if not unrestricted(restriction):
            return model.popular(offset, n, restriction)
        pages = self._popular.get(model)
        if pages is None:
            pages = self._popular[model] = {}
        page = pages.get((offset, n))
        if page is None:
            ranked = model.popular(offset, n, restriction)
            page = PopularPage(ranked, self.items(model, ranked, offset), self.jsonld(model, ranked, offset))
            if len(pages) < POPULAR_CACHE_LIMIT:
                pages[(offset, n)] = page
        return page

    def recommend(self, model: Model, request: reco_pb2.RecommendRequest, candidates: Candidates,
                  experiment: str, arm: str, decorate: Decorate | None = None) -> reco_pb2.RecommendResponse:
        if isinstance(candidates, PopularPage):
            return reco_pb2.RecommendResponse(
                model=model.name, version=model.version, user_id=request.user_id, items=candidates.items,
                source=reco_pb2.SOURCE_POPULAR, jsonld="" if request.omit_jsonld else candidates.jsonld)
        items = self.items(model, candidates, request.offset)
        reasons = decorate(items) if decorate is not None else None
        return reco_pb2.RecommendResponse(
            model=model.name, version=model.version, user_id=request.user_id,
            items=items, source=SOURCE_PB[candidates.source],
            jsonld="" if request.omit_jsonld else self.jsonld(model, candidates, request.offset,
                                                              experiment=experiment, arm=arm, reasons=reasons),
            experiment=experiment, arm=arm,
        )

    def similar(self, model: Model, request: reco_pb2.SimilarRequest, ranked: Ranked) -> reco_pb2.SimilarResponse:
        return reco_pb2.SimilarResponse(
            model=model.name, version=model.version, item_id=request.item_id,
            items=self.items(model, ranked, request.offset), source=SOURCE_PB[ranked.source],
            jsonld="" if request.omit_jsonld else self.jsonld(model, ranked, request.offset, about=request.item_id),
        )
