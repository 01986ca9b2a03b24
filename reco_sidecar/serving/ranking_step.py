"""Where a ranked candidate set becomes the page: the ranking stage (ranking/stage.py) under
the rules a worker serves now, hidden items left out of every answer, and reasons attached.

The service asks `find` for the rule set of (model, experiment arm); with none, answers are
the model's own top-N exactly as before. One rules generation is read per request, so a
request never mixes two files; a rollout swaps it between requests.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

import numpy as np

from reco_sidecar.common.errors import InvalidArgument
from reco_sidecar.engine.model import Model
from reco_sidecar.engine.query import Ranked, RecQuery, Restriction
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.ranking import popular, stage
from reco_sidecar.ranking import reasons as why
from reco_sidecar.ranking.compiled import Compiled, CompiledRules, ForModel
from reco_sidecar.ranking.live import LiveRules
from reco_sidecar.serving import tracing
from reco_sidecar.serving.online import OnlineUser


def check_explain(k: int) -> int:
    if k > why.MAX_REASONS:
        raise InvalidArgument(f"at most {why.MAX_REASONS} reasons per item, got {k}", field="explain")
    return k


class RankingStep:
    def __init__(self, rules: LiveRules | None) -> None:
        self._live = rules
        self._compiled = CompiledRules()

    def for_model(self, model: Model) -> ForModel | None:
        if self._live is None:
            return None
        rules, generation = self._live.current
        if not rules.rule_sets and not rules.hide:
            return None
        return self._compiled.get(model, rules, generation)

    @staticmethod
    def hide(rules: ForModel | None, restriction: Restriction) -> Restriction:
        """Hidden items leave every answer: the exact retrieval never sees them."""
        if rules is None or not len(rules.hidden):
            return restriction
        return restriction.excluding(rules.hidden)

    @staticmethod
    def find(rules: ForModel | None, experiment: str = "", arm: str = "") -> Compiled | None:
        return None if rules is None else rules.find(experiment, arm)

    @staticmethod
    async def rank(model: Model, c: Compiled, query: RecQuery,
                   submit: Callable[[Model, RecQuery], Awaitable[Ranked]]) -> stage.Page:
        """Every retrieval the stage asks for goes through `submit` (the batcher): the first,
        usual-sized one and a deeper one (needed when caps or boosts reach past it), which
        costs a fraction in a batch of what it costs scored alone. Scores do not depend on
        the batch (engine/exactdot.py), so the page is the same either way."""
        exchange = stage.steps(model, c, query, time.time())
        started = time.perf_counter()
        asked = next(exchange)
        own = time.perf_counter() - started  # the stage's own work, the retrievals left out
        retrievals = candidates = 0
        try:
            while True:
                ranked = await submit(model, stage.retrieval_query(query, asked))
                retrievals, candidates = retrievals + 1, len(ranked.rows)
                started = time.perf_counter()
                try:
                    asked = exchange.send(ranked)
                finally:
                    own += time.perf_counter() - started
        except StopIteration as done:
            page: stage.Page = done.value
            tracing.note("rerank", {"reco.duration_ms": own * 1e3, "reco.rank.retrievals": retrievals,
                                    "reco.rank.candidates": candidates})
            return page

    @staticmethod
    def popular(model: Model, c: Compiled | None, lookup: Callable[[str], OnlineUser | None] | None,
                user_id: str, offset: int, n: int, restriction: Restriction) -> Ranked | None:
        """The popular fallback of a user the model does not know, whose only events are
        impressions, with the impressions rule of their rule set `c` applied (`lookup`: their
        online state, None when online learning is off for the call). None when nothing of
        theirs sinks: the shared fallback serves them, and no lookup is made without the rule."""
        if c is None or c.rules.impressions is None or lookup is None:
            return None
        found = lookup(user_id)
        sinking = stage.sunk_rows(c, None if found is None else (found.shown_rows, found.shown_counts))
        if not len(sinking):
            return None
        return popular.page(model, c, sinking, offset, n, restriction)

    @staticmethod
    def decorate(model: Model, items: Sequence[reco_pb2.ScoredItem], query: RecQuery | None, ranked: Ranked,
                 explain: int, pinned: np.ndarray | None) -> list[list[tuple[str, float]]] | None:
        """Sets reasons and pin marks on the page's items; returns the reasons for JSON-LD
        ((history item id, share) per item), or None when none were asked for."""
        if pinned is not None and pinned.any():
            # false is the field's default (and never on the wire): only pins need setting
            for i in np.flatnonzero(pinned).tolist():
                items[i].pinned = True
        if not explain:
            return None
        ids = model.items.ids
        found = why.reasons(model, query, ranked.rows, explain) if query is not None else [[] for _ in items]
        out: list[list[tuple[str, float]]] = []
        for item, reasons in zip(items, found, strict=True):
            item.reasons.extend(reco_pb2.RankingReason(item_id=ids[r.row], contribution=r.contribution,
                                                       share=r.share) for r in reasons)
            out.append([(ids[r.row], r.share) for r in reasons])
        return out

