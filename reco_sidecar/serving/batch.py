"""BatchRecommend: one stream's users in chunks of --batch-chunk, each chunk scored off the
loop (two in flight: one scored while the previous one is sent), answered in order, one user
per message or up to users_per_message per message. A chunk goes retrieval (one
`rank_for_arm` per model and arm) -> [re-rank] -> render, like a Recommend; the model, the
experiments and every arm's model are the ones leased when the stream started."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from reco_sidecar.engine.model import Model
from reco_sidecar.engine.query import Provenance, Ranked, RecQuery, Restriction
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.ranking import stage
from reco_sidecar.ranking.compiled import Compiled
from reco_sidecar.serving import request_checks as rq
from reco_sidecar.serving import tracing
from reco_sidecar.serving.arms import Choice
from reco_sidecar.serving.batch_arms import BatchArms, Target
from reco_sidecar.serving.online import Online, OnlineUser
from reco_sidecar.serving.ranking_step import RankingStep
from reco_sidecar.serving.render import SOURCE_NAME, SOURCE_OF, SOURCE_PB, Pages, PopularPage
from reco_sidecar.serving.retrieval import Ask, rank_for_arm

# Counts an arm's served answer and queues its shadows: (choice, source, item ids, request).
Served = Callable[[Choice, str, list[str], reco_pb2.RecommendRequest], None]


@dataclass(frozen=True, slots=True)
class _Staged:
    """What rendering needs of a user's ranking: the query (for reasons), the pin marks."""

    query: RecQuery
    pinned: np.ndarray | None


def _labels(choice: Choice | None) -> tuple[str, str]:
    return choice.labels if choice is not None else ("", "")


def _deeper(c: Compiled | None, query: RecQuery | None) -> RecQuery | None:
    """The query retrieval scores: deeper for a user the ranking stage re-ranks."""
    if c is None or query is None:
        return query
    return stage.retrieval_query(query, stage.depth(c, query))


class BatchStream:
    """How one stream answers: `score` turns one chunk into its messages (on a pool thread),
    `messages` drives the chunks in order."""

    def __init__(self, model: Model, request: reco_pb2.BatchRecommendRequest, restriction: Restriction, *,
                 chunk: int, pages: Pages, arms: BatchArms | None, served: Served,
                 online: Online | None = None, ranking: RankingStep | None = None) -> None:
        self.model = model
        self._ranking = ranking
        # Users with an online vector are answered from it, as Recommend answers them.
        self._online = online
        self.request = request
        self.restriction = restriction
        self.chunk = chunk
        self.arms = arms
        self.sources: dict[str, int] = {}
        self.arm_counts: dict[str, int] = {}
        self._pages = pages
        self._served = served
        self._counting = threading.Lock()
        self._main = Target(model, restriction)
        self._popular: PopularPage | Ranked | None = None
        self.per_message = max(1, request.users_per_message)
        # the per-user message: its own stream message, or one entry of `users`
        self._one: dict[str, Any] = ({} if self.per_message > 1 else
                                     {"model": model.name, "version": model.version})
        self._kind: Any = reco_pb2.BatchUserResult if self.per_message > 1 else reco_pb2.BatchRecommendResponse

    async def messages(self, pool: Executor) -> AsyncIterator[reco_pb2.BatchRecommendResponse]:
        loop = asyncio.get_running_loop()
        pending: list[asyncio.Future[list[reco_pb2.BatchRecommendResponse]]] = []
        try:
            for start in range(0, len(self.request.user_ids), self.chunk):
                # two chunks in flight: one scored while the previous one is sent
                score = tracing.carry(self.score, "chunk", {"reco.chunk.first_index": start})
                pending.append(loop.run_in_executor(pool, score, start))
                if len(pending) < 2:
                    continue
                for message in await pending.pop(0):
                    yield message
            while pending:
                for message in await pending.pop(0):
                    yield message
        finally:
            # A cancelled stream must not leave its leases to a chunk still being scored.
            for future in pending:
                future.cancel()
            for future in pending:
                if not future.cancelled():
                    await asyncio.wait([future])

    # -- one chunk: retrieval -> [re-rank] -> render ----------------------------------------------

    def score(self, start: int) -> list[reco_pb2.BatchRecommendResponse]:
        ids = self.request.user_ids[start : start + self.chunk]
        refused: dict[int, str] = {}
        for i, user_id in enumerate(ids):
            problem = rq.id_problem(user_id)
            if problem is not None:
                refused[i] = problem
        choices: list[Choice | None] = [None] * len(ids)
        if self.arms is not None:
            for i, user_id in enumerate(ids):
                if i not in refused:
                    choices[i] = self.arms.choose(user_id)
        reranking = [0, 0.0]  # users re-ranked, and the stage's seconds for them
        with tracing.span("score", {"reco.batch.size": len(ids) - len(refused)}):
            # The ranking stage runs inside retrieval, per user with a rule set: it needs the
            # deeper retrieval its rule set asks for.
            targets, ranked, staged = self._retrieve(ids, refused, choices, reranking)
        if reranking[0]:
            tracing.note("rerank", {"reco.duration_ms": reranking[1] * 1e3, "reco.rank.users": reranking[0]})
        results = []
        with tracing.event("render"):
            for i, user_id in enumerate(ids):
                index = start + i
                problem = refused.get(i)
                if problem is not None:
                    # never echo a refused id: it may be megabytes long
                    results.append(self._error(index, "", "INVALID_ARGUMENT", f"user_ids[{index}]: {problem}"))
                    continue
                results.append(self._render(index, user_id, choices[i], targets[i], ranked[i], staged.get(i)))
        return self._messages(results)

    def _retrieve(self, ids: list[str], refused: dict[int, str], choices: list[Choice | None],
                  reranking: list[Any]) -> tuple[list[Target], list[Ranked | None], dict[int, _Staged]]:
        """Each user's model and ranking: one rank_for_arm per (model, arm). Users the
        requested model's product answers (no arm, or an arm of that model) share one product.
        None: a user the model does not know (fallback decided when rendering)."""
        request = self.request
        targets: list[Target] = [self._main] * len(ids)
        ranked: list[Ranked | None] = [None] * len(ids)
        staged: dict[int, _Staged] = {}
        groups: dict[tuple[int, str], tuple[Target, Choice | None, list[int]]] = {}
        for i, choice in enumerate(choices):
            if i in refused:
                continue
            if choice is None or self.arms is None or self.arms.on_requested(choice):
                key, target, arm_choice = (0, ""), self._main, None
            else:
                target = self.arms.target(choice)
                key, arm_choice = (id(choice.manager), "/".join(choice.labels)), choice
            targets[i] = target
            groups.setdefault(key, (target, arm_choice, []))[2].append(i)
        now = time.time()
        for target, choice, members in groups.values():
            baseline = choice is not None and choice.baseline
            queries = {i: None if baseline else self._query(target, ids[i], choice) for i in members}
            # each user's rule set: their arm's (arms of the requested model share its product)
            rules = self._ranking.for_model(target.model) if self._ranking is not None and not baseline else None
            sets = {i: RankingStep.find(rules, *_labels(choices[i])) if queries[i] is not None else None
                    for i in members}
            asks = [Ask(ids[i], 0, request.n, target.restriction, request.filter.include_seen,
                        _deeper(sets[i], queries[i])) for i in members]
            # The main product leaves unknown users to the shared popular page; another arm's
            # model ranks its own fallback.
            out = rank_for_arm(target.model, choice.arm if choice else None, choice.experiment if choice else None,
                               asks, fallback=choice is not None and not request.disable_fallback)
            for i, result in zip(members, out, strict=True):
                c, q = sets[i], queries[i]
                if c is not None and q is not None and result is not None:
                    started = time.perf_counter()
                    page = stage.rerank(target.model, c, q, result, stage.deeper(target.model, q), now)
                    reranking[0] += 1
                    reranking[1] += time.perf_counter() - started
                    result = page.ranked
                    staged[i] = _Staged(q, page.pinned)
                elif q is not None:
                    staged[i] = _Staged(q, None)
                elif not baseline and not request.disable_fallback:  # the popular fallback
                    result = RankingStep.popular(target.model, RankingStep.find(rules, *_labels(choices[i])),
                                                 self._lookup(target, choices[i]), ids[i], 0, request.n,
                                                 target.restriction) or result
                ranked[i] = result
        return targets, ranked, staged

    def _lookup(self, target: Target, choice: Choice | None) -> Callable[[str], OnlineUser | None] | None:
        """How to find a user's online state for this arm; None when online learning is off for it."""
        online = self._online
        if online is None or not (choice is None or choice.arm is None or choice.arm.online):
            return None
        return lambda user_id: online.lookup(target.model, user_id)

    def _query(self, target: Target, user_id: str, choice: Choice | None) -> RecQuery | None:
        row = target.model.users.row(user_id)
        lookup = self._lookup(target, choice)
        if lookup is not None:
            found = lookup(user_id)
            if found is not None and found.vector is not None:
                return RecQuery(0, self.request.n, target.restriction, user_row=row, vector=found.vector,
                                include_seen=self.request.filter.include_seen, seen_rows=found.seen_rows,
                                source=Provenance.ONLINE if found.known else Provenance.ONLINE_NEW_USER,
                                online_sums=(found.sum_rows, found.sum_values),
                                shown=(found.shown_rows, found.shown_counts))
            if found is not None and row is not None:  # impressions alone: the trained vector stands
                return RecQuery(0, self.request.n, target.restriction, user_row=row,
                                include_seen=self.request.filter.include_seen,
                                shown=(found.shown_rows, found.shown_counts))
        if row is None:
            return None
        return RecQuery(0, self.request.n, target.restriction, user_row=row,
                        include_seen=self.request.filter.include_seen)

    def _render(self, index: int, user_id: str, choice: Choice | None, target: Target, ranked: Ranked | None,
                staged: _Staged | None = None) -> Any:
        experiment, arm = choice.labels if choice is not None else ("", "")
        if ranked is None and (self.request.disable_fallback or target is not self._main):
            return self._error(index, user_id, "NOT_FOUND", f"user_id: unknown user {user_id!r}",
                               experiment=experiment, arm=arm)
        result = self._answer(index, user_id, ranked, target, experiment, arm, staged)
        if arm and choice is not None and self.arms is not None:
            # Counted, and its shadows queued, as Recommend does.
            self._served(choice, SOURCE_NAME[SOURCE_OF[result.source]], [item.item_id for item in result.items],
                         self.arms.shadow_request(user_id))
        return result

    def _answer(self, index: int, user_id: str, ranked: Ranked | None, target: Target, experiment: str,
                arm: str, staged: _Staged | None = None) -> Any:
        jsonld = self.request.include_jsonld
        model, pages = target.model, self._pages
        if arm:
            # An arm's answer is rendered for it (its model, its tags), never the shared page.
            ranked = ranked or model.popular(0, self.request.n, target.restriction)
            self._count(SOURCE_NAME[ranked.source])
            items = pages.items(model, ranked, 0)
            reasons = self._decorate(model, items, ranked, staged)
            return self._kind(user_id=user_id, index=index, items=items, source=SOURCE_PB[ranked.source],
                              jsonld=pages.jsonld(model, ranked, 0, experiment=experiment, arm=arm,
                                                  reasons=reasons) if jsonld else "",
                              **self._tags(model, experiment, arm))
        if ranked is None:
            if self._popular is None:
                self._popular = pages.popular(model, 0, self.request.n, self.restriction)
            page = self._popular
            self._count(Provenance.POPULAR.value)
            if isinstance(page, PopularPage):
                return self._kind(user_id=user_id, index=index, items=page.items, source=reco_pb2.SOURCE_POPULAR,
                                  jsonld=page.jsonld if jsonld else "", **self._one)
            ranked = page
        self._count(SOURCE_NAME[ranked.source])
        items = pages.items(model, ranked, 0)
        reasons = self._decorate(model, items, ranked, staged)
        return self._kind(user_id=user_id, index=index, items=items, source=SOURCE_PB[ranked.source],
                          jsonld=pages.jsonld(model, ranked, 0, reasons=reasons) if jsonld else "", **self._one)

    def _decorate(self, model: Model, items: list[reco_pb2.ScoredItem], ranked: Ranked, staged: _Staged | None
                  ) -> list[list[tuple[str, float]]] | None:
        """Reasons (with `explain`) and pin marks on a user's items."""
        if staged is None or (not self.request.explain and staged.pinned is None):
            return None
        return RankingStep.decorate(model, items, staged.query, ranked, self.request.explain, staged.pinned)

    # -- message shapes and counts ----------------------------------------------------------------

    def _count(self, source: str) -> None:
        # Two chunks of a stream are scored at once, on two threads: no lost increments.
        with self._counting:
            self.sources[source] = self.sources.get(source, 0) + 1

    def _tags(self, model: Model, experiment: str, arm: str) -> dict[str, Any]:
        """The arm's fields, and its model and version when they are not the message's."""
        if not arm:
            return self._one
        key = f"{experiment}/{arm}"
        with self._counting:
            self.arm_counts[key] = self.arm_counts.get(key, 0) + 1
        tags: dict[str, Any] = {**self._one, "experiment": experiment, "arm": arm}
        if model is not self.model or self.per_message == 1:
            tags.update(model=model.name, version=model.version)
        return tags

    def _error(self, index: int, user_id: str, code: str, message: str, *, experiment: str = "",
               arm: str = "") -> Any:
        self._count("error")
        return self._kind(user_id=user_id, index=index, error=reco_pb2.ItemError(code=code, message=message),
                          **self._tags(self.model, experiment, arm))

    def _messages(self, results: list[Any]) -> list[reco_pb2.BatchRecommendResponse]:
        if self.per_message == 1:
            return results
        model, step = self.model, self.per_message
        return [reco_pb2.BatchRecommendResponse(model=model.name, version=model.version, users=results[i : i + step])
                for i in range(0, len(results), step)]
