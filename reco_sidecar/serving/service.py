"""The Recommender's methods on the worker's event loop: proto in, domain calls, proto out.

Methods raise domain errors (RecoError); `handlers.py` turns them into precise status codes
naming the field, counts and logs the call. Each method records what the access log and the
metrics report in `facts` (model, version, counts, sources).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from reco_sidecar.common import logs
from reco_sidecar.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    RecoError,
    ResourceExhausted,
    Unavailable,
)
from reco_sidecar.common.versions import VersionSpec, parse_version_spec
from reco_sidecar.engine.model import Model
from reco_sidecar.engine.query import Ranked, RecQuery, Restriction, Source
from reco_sidecar.experiments.live import LiveExperiments
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.manager.manager import ModelManager
from reco_sidecar.manager.registry import ModelRegistry
from reco_sidecar.ranking.compiled import ForModel
from reco_sidecar.ranking.live import LiveRules
from reco_sidecar.serving import request_checks as rq
from reco_sidecar.serving import status
from reco_sidecar.serving.arms import Arms, Choice
from reco_sidecar.serving.batch_arms import BatchArms
from reco_sidecar.serving.batcher import LoopBatcher
from reco_sidecar.serving.jsonld import Renderer
from reco_sidecar.serving.ranking_step import RankingStep, check_explain

log = logs.get(__name__)

STATUS_OF: dict[type[RecoError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}
SOURCE_PB = {
    Source.RANDOM: reco_pb2.SOURCE_RANDOM,
    Source.MODEL: reco_pb2.SOURCE_MODEL,
    Source.FOLD_IN: reco_pb2.SOURCE_FOLD_IN,
    Source.POPULAR: reco_pb2.SOURCE_POPULAR,
    Source.ANN: reco_pb2.SOURCE_ANN,
}
SOURCE_NAME = {source: source.value for source in Source}
_SOURCE_OF = {pb: source for source, pb in SOURCE_PB.items()}


@dataclass(frozen=True)
class ReloadOutcome:
    old_version: int
    new_version: int
    load_seconds: float
    workers: int


@dataclass(frozen=True)
class ExperimentsOutcome:
    generation: int
    experiments: int
    workers: int


class Reloader(Protocol):
    """Blocking; the service calls it from a thread, off the event loop."""

    def reload(self, model: str, version: VersionSpec) -> ReloadOutcome: ...


def no_experiments_file() -> ExperimentsOutcome:
    raise FailedPrecondition("this sidecar was started without --experiments", field="experiments")


@dataclass(frozen=True)
class RulesOutcome:
    generation: int
    rule_sets: int
    workers: int


def no_rules_file() -> RulesOutcome:
    raise FailedPrecondition("this sidecar was started without --rules", field="rules")


@dataclass(frozen=True)
class WorkerAddress:
    pid: int
    address: str


class Topology(Protocol):
    """Where this worker and its siblings listen."""

    def me(self) -> WorkerAddress: ...
    def workers(self) -> list[WorkerAddress]: ...
    def shared_address(self) -> str: ...


def status_code(error: RecoError) -> grpc.StatusCode:
    for kind, code in STATUS_OF.items():
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL


Facts = dict[str, Any]
# Popular answers kept per model version: (offset, n) pairs are few in practice; the bound
# only stops a client walking every page from growing the cache without end.
POPULAR_CACHE_LIMIT = 1024
# Batches of at most this many queries are scored on the event loop, larger ones in the
# executor. On the benchmark model (one BLAS thread) the kernel costs 0.41 ms of CPU for one
# query, 0.87 for 4, 1.2 for 8 and 1.7 for 16, then 3.0 for 32 and 4.7 for 64; a trip to the
# executor and back costs 0.07 ms of CPU idle and, under load, a sixth to a quarter of a
# worker's samples (the GIL passed twice, one more loop turn). Up to 16 queries the loop
# stalls for under 2 ms, a fifth of Recommend's 10 ms p99 target; beyond that the stall
# would eat into it, while the hand-off is small against the kernel.
INLINE_SCORE_MAX = 16


@dataclass(frozen=True)
class _Popular:
    """An unfiltered fallback page, built once per model version."""

    ranked: Ranked
    items: list[reco_pb2.ScoredItem]
    jsonld: str


def _unrestricted(r: Restriction) -> bool:
    return not len(r.exclude_rows) and r.candidate_rows is None and r.allow_mask is None


class RecommenderService:
    def __init__(
        self,
        models: ModelRegistry | ModelManager,
        *,
        limits: rq.Limits,
        renderer: Renderer,
        reloader: Reloader,
        topology: Topology,
        batch_max_delay: float,
        batch_max_size: int,
        batch_chunk: int,
        on_batch: Callable[[int], None] | None = None,
        store_status: Callable[[], dict[str, Any] | None] = lambda: None,
        experiments: LiveExperiments | None = None,
        reload_experiments: Callable[[], ExperimentsOutcome] = no_experiments_file,
        rules: LiveRules | None = None,
        reload_rules: Callable[[], RulesOutcome] = no_rules_file,
    ) -> None:
        self._models = models if isinstance(models, ModelRegistry) else ModelRegistry.single(models)
        self._experiments = experiments
        self._reload_experiments = reload_experiments
        self._ranking = RankingStep(rules)
        self._reload_rules = reload_rules
        self._arms = Arms(self._models, experiments)  # shadow arms: the Arms' own thread, never the loop
        self._limits = limits
        self._renderer = renderer
        self._reloader = reloader
        self._topology = topology
        self._store_status = store_status
        self._chunk = batch_chunk
        # Scoring and BatchRecommend chunks run here, off the loop: numpy drops the GIL in the
        # product and the top-k. Two threads: one batch scoring while the next is prepared.
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="score")
        self._batcher: LoopBatcher[Model, RecQuery, Ranked] | None = None
        if batch_max_size > 1:
            self._batcher = LoopBatcher(_recommend, executor=self._pool, max_delay=batch_max_delay,
                                        max_size=batch_max_size, inline_max=INLINE_SCORE_MAX,
                                        on_batch=on_batch)
        self._popular: weakref.WeakKeyDictionary[Model, dict[tuple[int, int], _Popular]] = \
            weakref.WeakKeyDictionary()

    def close(self) -> None:
        self._arms.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- pieces of responses --------------------------------------------------------------------

    @staticmethod
    def _items(model: Model, ranked: Ranked, offset: int) -> list[reco_pb2.ScoredItem]:
        ids = model.items.ids
        return [
            reco_pb2.ScoredItem(item_id=ids[row], score=score, rank=offset + i)
            for i, (row, score) in enumerate(zip(ranked.rows.tolist(), ranked.scores.tolist(), strict=True),
                                             start=1)
        ]

    def _jsonld(self, model: Model, ranked: Ranked, offset: int, about: str | None = None,
                experiment: str = "", arm: str = "", reasons: list[list[tuple[str, float]]] | None = None) -> str:
        ids = model.items.ids
        # SOURCE_NAME, not ranked.source.value: Enum.value is a property call on every response
        return self._renderer.render(
            model=model.name, version=model.version, source=SOURCE_NAME[ranked.source],
            item_ids=[ids[r] for r in ranked.rows.tolist()], scores=ranked.scores.tolist(),
            first_position=offset + 1, about=about, experiment=experiment, arm=arm, reasons=reasons,
        )

    def _popular_page(self, model: Model, offset: int, n: int, restriction: Restriction) -> _Popular | Ranked:
        """An unfiltered page from the per-version cache (built on first use); a filtered one
        computed for this call."""
        if not _unrestricted(restriction):
            return model.popular(offset, n, restriction)
        pages = self._popular.get(model)
        if pages is None:
            pages = self._popular[model] = {}
        page = pages.get((offset, n))
        if page is None:
            ranked = model.popular(offset, n, restriction)
            page = _Popular(ranked, self._items(model, ranked, offset), self._jsonld(model, ranked, offset))
            if len(pages) < POPULAR_CACHE_LIMIT:
                pages[(offset, n)] = page
        return page

    # -- Recommend ------------------------------------------------------------------------------

    async def recommend(self, request: reco_pb2.RecommendRequest, facts: Facts) -> reco_pb2.RecommendResponse:
        choice = self._arms.choose(request)  # the request's model, or the user's experiment arm
        experiment, arm = choice.labels
        if arm:
            facts.update(experiment=experiment, arm=arm)
        with choice.manager.lease() as model:
            rq.check_page(request.n, request.offset, self._limits)
            explain = check_explain(request.explain)
            rules = self._ranking.for_model(model)
            restriction = self._ranking.hide(rules, rq.restriction(model, request.filter, self._limits))
            facts.update(model=model.name, version=model.version, users=1)
            ranked = self._arms.rank(choice, model, request, restriction)  # a baseline arm's answer
            query: RecQuery | None = None
            pinned = None
            if ranked is None:
                query = rq.recommend_query(model, request, self._limits, restriction)
                compiled = self._ranking.find(rules, experiment, arm) if query is not None else None
                if compiled is not None and query is not None:
                    staged = await self._ranking.rank(model, compiled, query, self._retrieve)
                    ranked, pinned = staged.ranked, staged.pinned
                elif query is None and not arm:
                    page = self._popular_page(model, request.offset, request.n, restriction)
                    if isinstance(page, _Popular):
                        facts.update(items=len(page.ranked.rows), source=Source.POPULAR.value)
                        return reco_pb2.RecommendResponse(
                            model=model.name, version=model.version, user_id=request.user_id, items=page.items,
                            source=reco_pb2.SOURCE_POPULAR, jsonld="" if request.omit_jsonld else page.jsonld)
                    ranked = page
                elif query is None:
                    ranked = model.popular(request.offset, request.n, restriction)
                elif self._batcher is not None:
                    ranked = await self._batcher.submit(model, query)
                else:
                    # --batch-max-size 1: no batching, scored on the loop (the bare server's form)
                    ranked = model.recommend([query])[0]
            facts.update(items=len(ranked.rows), source=SOURCE_NAME[ranked.source])
            items = self._items(model, ranked, request.offset)
            reasons = self._ranking.decorate(model, items, query, ranked, explain, pinned)
            response = reco_pb2.RecommendResponse(
                model=model.name, version=model.version, user_id=request.user_id,
                items=items, source=SOURCE_PB[ranked.source],
                jsonld="" if request.omit_jsonld else self._jsonld(model, ranked, request.offset,
                                                                    experiment=experiment, arm=arm, reasons=reasons),
                experiment=experiment, arm=arm,
            )
        if arm:
            # Counted, and shadows queued on the Arms' thread, after the answer is built; never waited for.
            self._arms.served(choice, ranked.source.value, [i.item_id for i in response.items], request)
        return response

    async def _retrieve(self, model: Model, query: RecQuery) -> Ranked:
        if self._batcher is not None:
            return await self._batcher.submit(model, query)
        return model.recommend([query])[0]

    # -- Similar --------------------------------------------------------------------------------

    async def similar(self, request: reco_pb2.SimilarRequest, facts: Facts) -> reco_pb2.SimilarResponse:
        with self._models.get(request.model).lease() as model:
            rq.check_id(request.item_id, "item_id")
            rq.check_page(request.n, request.offset, self._limits)
            row = model.items.row(request.item_id)
            if row is None:
                raise NotFound(f"unknown item {request.item_id!r}", field="item_id")
            restriction = self._ranking.hide(self._ranking.for_model(model),
                                             rq.restriction(model, request.filter, self._limits))
            # No matrix product: a table lookup or an annoy query, cheaper than a thread hop.
            ranked = model.similar(row, request.offset, request.n, restriction)
            facts.update(model=model.name, version=model.version, items=len(ranked.rows),
                         source=SOURCE_NAME[ranked.source])
            return reco_pb2.SimilarResponse(
                model=model.name, version=model.version, item_id=request.item_id,
                items=self._items(model, ranked, request.offset), source=SOURCE_PB[ranked.source],
                jsonld="" if request.omit_jsonld else self._jsonld(model, ranked, request.offset,
                                                                    about=request.item_id),
            )

    # -- BatchRecommend -------------------------------------------------------------------------

    async def batch_recommend(self, request: reco_pb2.BatchRecommendRequest, facts: Facts
                              ) -> AsyncIterator[reco_pb2.BatchRecommendResponse]:
        """The whole stream is answered by the model leased here, at its start: a Reload
        meanwhile changes nothing in it (the old version stays mapped until it ends)."""
        count = len(request.user_ids)
        if not count:
            raise InvalidArgument("must not be empty", field="user_ids")
        if count > self._limits.max_batch_users:
            raise ResourceExhausted(f"{count} users, at most {self._limits.max_batch_users} per call",
                                    field="user_ids")
        rq.check_page(request.n, 0, self._limits)
        check_explain(request.explain)
        loop = asyncio.get_running_loop()
        sources: dict[str, int] = {}
        facts.update(users=count, sources=sources)
        requested = self._models.get(request.model)
        with requested.lease() as model, contextlib.ExitStack() as leases:
            rules = self._ranking.for_model(model)
            restriction = self._ranking.hide(rules, rq.restriction(model, request.filter, self._limits))
            facts.update(model=model.name, version=model.version)
            # Users in an experiment get their arm, as Recommend gives it; every model an arm
            # needs is leased here, once, like the requested one.
            arms = BatchArms(self._arms, requested, model, restriction, request, self._limits, leases,
                             restrict=lambda m, r: self._ranking.hide(self._ranking.for_model(m), r))
            chunk = _Chunking(model, request, restriction, self._chunk, sources, arms if arms.active else None,
                              rules)
            if arms.active:
                facts.update(arms=chunk.arm_counts)  # users per "experiment/arm", in the log line
            pending: list[asyncio.Future[list[reco_pb2.BatchRecommendResponse]]] = []
            try:
                for start in range(0, count, self._chunk):
                    # two chunks in flight: one scored while the previous one is sent
                    pending.append(loop.run_in_executor(self._pool, self._score_chunk, chunk, start))
                    if len(pending) < 2:
                        continue
                    for message in await pending.pop(0):
                        yield message
                while pending:
                    for message in await pending.pop(0):
                        yield message
            finally:
                # A cancelled stream must not leave the lease to a chunk still being scored.
                for future in pending:
                    future.cancel()
                for future in pending:
                    if not future.cancelled():
                        await asyncio.wait([future])

    def _score_chunk(self, c: _Chunking, start: int) -> list[reco_pb2.BatchRecommendResponse]:
        model, request = c.model, c.request
        ids = request.user_ids[start : start + c.size]
        refused: dict[int, str] = {}
        rows: list[int | None] = []
        for i, user_id in enumerate(ids):
            problem = rq.id_problem(user_id)
            if problem is not None:
                refused[i] = problem
                rows.append(None)
            else:
                rows.append(model.users.row(user_id))
        choices: list[Choice | None] = [None] * len(ids)
        answered: dict[int, tuple[Model, Ranked | None]] = {}  # users an arm answers off the main product
        if c.arms is not None:
            groups: dict[tuple[int, str], list[int]] = {}
            for i, user_id in enumerate(ids):
                if i not in refused:
                    choice = choices[i] = c.arms.choose(user_id)
                    if not c.arms.on_requested(choice):
                        rows[i] = None
                        groups.setdefault((id(choice.manager), choice.labels[1]), []).append(i)
            for members in groups.values():
                first = choices[members[0]]
                assert first is not None
                target = c.arms.target(first).model
                for i, result in zip(members, c.arms.rank_other(first, [ids[i] for i in members]), strict=True):
                    answered[i] = (target, result)
        known = [i for i, r in enumerate(rows) if r is not None]
        queries = [RecQuery(0, request.n, c.restriction, user_row=rows[i], include_seen=request.filter.include_seen)
                   for i in known]
        ranked: list[Ranked | None] = [None] * len(ids)
        sets = [self._ranking.find(c.rules, *_labels(choices[i])) for i in known]
        results, pinned = self._ranking.rank_batch(model, sets, queries, _recommend)
        pins: dict[int, Any] = {}
        for i, result, marks in zip(known, results, pinned, strict=True):
            ranked[i] = result
            pins[i] = marks
        query_of = dict(zip(known, queries, strict=True))
        results = []
        for i, user_id in enumerate(ids):
            index = start + i
            problem = refused.get(i)
            if problem is not None:
                # never echo a refused id: it may be megabytes long
                results.append(c.error(index, "", "INVALID_ARGUMENT", f"user_ids[{index}]: {problem}"))
                continue
            chosen = choices[i]
            experiment, arm = chosen.labels if chosen is not None else ("", "")
            by, r = answered.get(i, (model, ranked[i]))
            if r is None and (request.disable_fallback or i in answered):
                results.append(c.error(index, user_id, "NOT_FOUND", f"user_id: unknown user {user_id!r}",
                                       experiment=experiment, arm=arm))
                continue
            result = c.answer(index, user_id, r, self, model=by, experiment=experiment, arm=arm,
                              query=query_of.get(i), pinned=pins.get(i))
            results.append(result)
            if arm and c.arms is not None and chosen is not None:
                # Counted, and its shadows queued, as Recommend does.
                self._arms.served(chosen, SOURCE_NAME[_SOURCE_OF[result.source]],
                                  [item.item_id for item in result.items], c.arms.shadow_request(user_id))
        return c.messages(results)

    # -- Reload and status ----------------------------------------------------------------------

    async def reload(self, request: reco_pb2.ReloadRequest, facts: Facts) -> reco_pb2.ReloadResponse:
        name = self._models.get(request.model).name
        outcome = await asyncio.to_thread(self._reloader.reload, name, parse_version_spec(request.version))
        facts.update(model=name, version=outcome.new_version)
        return reco_pb2.ReloadResponse(
            model=name, old_version=outcome.old_version, new_version=outcome.new_version,
            load_seconds=outcome.load_seconds, workers=outcome.workers,
        )

    async def get_model_status(self, request: reco_pb2.GetModelStatusRequest, facts: Facts
                               ) -> reco_pb2.GetModelStatusResponse:
        manager = self._models.get(request.model)
        me = self._topology.me()
        resp = reco_pb2.GetModelStatusResponse(
            model=manager.name,
            worker=reco_pb2.WorkerInfo(pid=me.pid, address=me.address),
            workers=[reco_pb2.WorkerInfo(pid=w.pid, address=w.address) for w in self._topology.workers()],
            shared_address=self._topology.shared_address(),
            default_model=self._models.default,
        )
        status.fill(resp, manager)
        for each in self._models:
            status.fill(resp.models.add(), each)
        if resp.version:
            facts.update(model=manager.name, version=resp.version)
        self._add_store(resp)
        return resp

    def _add_store(self, resp: reco_pb2.GetModelStatusResponse) -> None:
        """The followed store's view; a version whose download failed is listed as FAILED."""
        store = self._store_status()
        if store is None:
            return
        resp.store.CopyFrom(reco_pb2.StoreStatus(**store))
        failed = resp.store.failed_version
        if failed and all(v.version != failed for v in resp.versions):
            resp.versions.append(reco_pb2.ModelVersionStatus(version=failed, state=reco_pb2.MODEL_STATE_FAILED,
                                                             error=resp.store.error))

    # -- experiments ------------------------------------------------------------------------------

    async def list_experiments(self, request: reco_pb2.ListExperimentsRequest, facts: Facts
                               ) -> reco_pb2.ListExperimentsResponse:
        me = self._topology.me()
        resp = reco_pb2.ListExperimentsResponse(worker=reco_pb2.WorkerInfo(pid=me.pid, address=me.address))
        if self._experiments is not None:
            status.experiments(resp, self._experiments.snapshot())
        return resp

    async def reload_rules(self, request: reco_pb2.RankingReloadRulesRequest, facts: Facts
                           ) -> reco_pb2.RankingReloadRulesResponse:
        outcome = await asyncio.to_thread(self._reload_rules)  # a rollout to every worker: blocking
        facts.update(generation=outcome.generation)
        return reco_pb2.RankingReloadRulesResponse(generation=outcome.generation, rule_sets=outcome.rule_sets,
                                                   workers=outcome.workers)

    async def reload_experiments(self, request: reco_pb2.ReloadExperimentsRequest, facts: Facts
                                 ) -> reco_pb2.ReloadExperimentsResponse:
        outcome = await asyncio.to_thread(self._reload_experiments)  # a rollout to every worker: blocking
        facts.update(generation=outcome.generation)
        return reco_pb2.ReloadExperimentsResponse(generation=outcome.generation,
                                                  experiments=outcome.experiments, workers=outcome.workers)


def _labels(choice: Choice | None) -> tuple[str, str]:
    return choice.labels if choice is not None else ("", "")


def _recommend(model: Model, queries: Sequence[RecQuery]) -> list[Ranked]:
    return model.recommend(queries)


class _Chunking:
    """How one BatchRecommend stream shapes its answers: one user per message (the original
    form, each answer built as the message itself) or up to users_per_message users in `users`."""

    def __init__(self, model: Model, request: reco_pb2.BatchRecommendRequest, restriction: Restriction,
                 size: int, sources: dict[str, int], arms: BatchArms | None = None,
                 rules: ForModel | None = None) -> None:
        self.model = model
        self.rules = rules
        self.arms = arms
        self.arm_counts: dict[str, int] = {}
        self._counting = threading.Lock()
        self.request = request
        self.restriction = restriction
        self.size = size
        self.per_message = max(1, request.users_per_message)
        self.sources = sources
        self.popular: _Popular | Ranked | None = None
        # the per-user message: its own stream message, or one entry of `users`
        self._one: dict[str, Any] = ({} if self.per_message > 1 else
                                     {"model": model.name, "version": model.version})
        self._kind: Any = reco_pb2.BatchUserResult if self.per_message > 1 else reco_pb2.BatchRecommendResponse

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

    def error(self, index: int, user_id: str, code: str, message: str, *, experiment: str = "",
              arm: str = "") -> Any:
        self._count("error")
        return self._kind(user_id=user_id, index=index, error=reco_pb2.ItemError(code=code, message=message),
                          **self._tags(self.model, experiment, arm))

    def answer(self, index: int, user_id: str, ranked: Ranked | None, service: RecommenderService, *,
               model: Model | None = None, experiment: str = "", arm: str = "", query: RecQuery | None = None,
               pinned: Any = None) -> Any:
        jsonld = self.request.include_jsonld
        model = model or self.model
        if self.request.explain and ranked is not None:
            # Explained answers are built here, never the shared forms below.
            items = service._items(model, ranked, 0)
            reasons = service._ranking.decorate(model, items, query, ranked, self.request.explain, pinned)
            self._count(SOURCE_NAME[ranked.source])
            return self._kind(user_id=user_id, index=index, items=items, source=SOURCE_PB[ranked.source],
                              jsonld=service._jsonld(model, ranked, 0, experiment=experiment, arm=arm,
                                                     reasons=reasons) if jsonld else "",
                              **self._tags(model, experiment, arm))
        if arm:
            # An arm's answer is rendered for it (its model, its tags), never the shared page.
            ranked = ranked or model.popular(0, self.request.n, self.restriction)
            self._count(SOURCE_NAME[ranked.source])
            return self._kind(user_id=user_id, index=index, items=service._items(model, ranked, 0),
                              source=SOURCE_PB[ranked.source],
                              jsonld=service._jsonld(model, ranked, 0, experiment=experiment, arm=arm) if jsonld
                              else "", **self._tags(model, experiment, arm))
        if ranked is None:
            if self.popular is None:
                self.popular = service._popular_page(model, 0, self.request.n, self.restriction)
            page = self.popular
            self._count(Source.POPULAR.value)
            if isinstance(page, _Popular):
                return self._kind(user_id=user_id, index=index, items=page.items, source=reco_pb2.SOURCE_POPULAR,
                                  jsonld=page.jsonld if jsonld else "", **self._one)
            ranked = page
        self._count(SOURCE_NAME[ranked.source])
        items = service._items(model, ranked, 0)
        service._ranking.decorate(model, items, query, ranked, 0, pinned)
        return self._kind(user_id=user_id, index=index, items=items, source=SOURCE_PB[ranked.source],
                          jsonld=service._jsonld(model, ranked, 0) if jsonld else "", **self._one)

    def messages(self, results: list[Any]) -> list[reco_pb2.BatchRecommendResponse]:
        if self.per_message == 1:
            return results
        model, step = self.model, self.per_message
        return [reco_pb2.BatchRecommendResponse(model=model.name, version=model.version, users=results[i : i + step])
                for i in range(0, len(results), step)]
