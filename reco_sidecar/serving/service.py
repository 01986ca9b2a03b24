"""The Recommender's methods on the worker's event loop: proto in, domain calls, proto out.

Methods raise domain errors (RecoError); `handlers.py` turns them into precise status codes
naming the field, counts and logs the call. Each method records what the access log and the
metrics report in `facts` (model, version, counts, sources). A Recommend goes retrieval
(`_retrieve`: the model, a baseline arm or the popular fallback) -> [re-rank] -> render
(`render.py`); BatchRecommend streams are `batch.py`'s, the protocols the runtime implements
are `contracts.py`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from reco_sidecar.common import logs
from reco_sidecar.common.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from reco_sidecar.common.versions import parse_version_spec
from reco_sidecar.engine.model import Model
from reco_sidecar.engine.query import Ranked, RecQuery, Restriction
from reco_sidecar.experiments.live import LiveExperiments
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.manager.manager import ModelManager
from reco_sidecar.manager.registry import ModelRegistry
from reco_sidecar.ranking.live import LiveRules
from reco_sidecar.serving import metrics, status, tracing
from reco_sidecar.serving import request_checks as rq
from reco_sidecar.serving.arms import Arms, Choice
from reco_sidecar.serving.batch import BatchStream
from reco_sidecar.serving.batch_arms import BatchArms
from reco_sidecar.serving.batch_wait import DEFAULT_POLICY
from reco_sidecar.serving.batcher import LoopBatcher
from reco_sidecar.serving.contracts import (
    ExperimentsOutcome,
    Reloader,
    RulesOutcome,
    Topology,
    no_experiments_file,
    no_rules_file,
)
from reco_sidecar.serving.jsonld import Renderer
from reco_sidecar.serving.online import Accepted, Online, OnlineUser
from reco_sidecar.serving.online import events_of as online_events
from reco_sidecar.serving.ranking_step import RankingStep, check_explain
from reco_sidecar.serving.render import SOURCE_NAME, Candidates, Pages, PopularPage
from reco_sidecar.serving.retrieval import Ask, rank_for_arm
from reco_sidecar.store.status import StoreStatus

log = logs.get(__name__)

Facts = dict[str, Any]
# Batches of at most this many queries are scored on the event loop, larger ones in the
# executor. On the benchmark model (one BLAS thread) the kernel costs 0.41 ms of CPU for one
# query, 0.87 for 4, 1.2 for 8 and 1.7 for 16, then 3.0 for 32 and 4.7 for 64; a trip to the
# executor and back costs 0.07 ms of CPU idle and, under load, a sixth to a quarter of a
# worker's samples (the GIL passed twice, one more loop turn). Up to 16 queries the loop
# stalls for under 2 ms, a fifth of Recommend's 10 ms p99 target; beyond that the stall
# would eat into it, while the hand-off is small against the kernel.
INLINE_SCORE_MAX = 16


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
        batch_wait_policy: str = DEFAULT_POLICY,
        on_batch: Callable[[int, bool], None] | None = None,
        recommends_in_flight: Callable[[], int] = lambda: 0,
        store_status: Callable[[], StoreStatus | None] = lambda: None,
        experiments: LiveExperiments | None = None,
        reload_experiments: Callable[[], ExperimentsOutcome] = no_experiments_file,
        online: Online | None = None,
        rules: LiveRules | None = None,
        reload_rules: Callable[[], RulesOutcome] = no_rules_file,
    ) -> None:
        self._models = models if isinstance(models, ModelRegistry) else ModelRegistry.single(models)
        self._online = online
        self._experiments = experiments
        self._reload_experiments = reload_experiments
        self._ranking = RankingStep(rules)
        self._reload_rules = reload_rules
        self._arms = Arms(self._models, experiments)  # shadow arms: their own thread, never the loop
        self._limits = limits
        self._pages = Pages(renderer)
        self._reloader = reloader
        self._topology = topology
        self._store_status = store_status
        self._chunk = batch_chunk
        # Scoring and BatchRecommend chunks run here, off the loop: numpy drops the GIL in the
        # product and the top-k. Two threads: one batch scoring while the next is prepared.
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix=tracing.EXECUTOR_PREFIX)
        self._batcher: LoopBatcher[Model, RecQuery, Ranked] | None = None
        if batch_max_size > 1:
            self._batcher = LoopBatcher(tracing.timed(_recommend), executor=self._pool, max_delay=batch_max_delay,
                                        max_size=batch_max_size, inline_max=INLINE_SCORE_MAX,
                                        on_batch=on_batch, in_flight=recommends_in_flight,
                                        policy=batch_wait_policy)

    def close(self) -> None:
        self._arms.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

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
            # hidden items leave every answer: retrieval never sees them
            restriction = self._ranking.hide(rules, rq.restriction(model, request.filter, self._limits))
            facts.update(model=model.name, version=model.version, users=1)
            query = None if choice.baseline else rq.recommend_query(model, request, self._limits, restriction,
                                                                    self._online_of(model, choice))
            compiled = self._ranking.find(rules, experiment, arm) if query is not None else None
            pinned = None
            if compiled is not None and query is not None:
                # The ranking stage: a deeper exact retrieval (through the batcher), re-ranked.
                staged = await self._ranking.rank(model, compiled, query, self._submit)
                candidates: Candidates = staged.ranked
                # the usual page has no pin: then nothing is left to decorate
                pinned = staged.pinned if staged.pinned.any() else None
            else:
                candidates = await self._retrieve(choice, model, request, restriction, query)
            ranked = candidates.ranked if isinstance(candidates, PopularPage) else candidates
            facts.update(items=len(ranked.rows), source=SOURCE_NAME[ranked.source])
            decorate = None
            if explain or pinned is not None:
                def decorate(items: list[reco_pb2.ScoredItem]) -> list[list[tuple[str, float]]] | None:
                    return self._ranking.decorate(model, items, query, ranked, explain, pinned)
            with tracing.event("render"):
                response = self._pages.recommend(model, request, candidates, experiment, arm, decorate)
        if arm:
            # Counted, and shadows queued on their thread, after the answer is built; never waited for.
            self._arms.served(choice, SOURCE_NAME[ranked.source], [i.item_id for i in response.items], request)
        return response

    async def _retrieve(self, choice: Choice, model: Model, request: reco_pb2.RecommendRequest,
                        restriction: Restriction, query: RecQuery | None) -> Candidates:
        """The ranked candidates of one Recommend: a baseline arm's, the model's (through
        the batcher), or the popular fallback (unfiltered and outside an arm: the page
        rendered once per version)."""
        if choice.baseline:
            ask = Ask(request.user_id, request.offset, request.n, restriction, request.filter.include_seen, None)
            baseline = rank_for_arm(model, choice.arm, choice.experiment, [ask], fallback=True)[0]
            assert baseline is not None  # a baseline ranks every user
            return baseline
        if query is None:
            lookup = self._online_of(model, choice)  # None without online learning: no rule lookup either
            if lookup is not None:
                sunk = self._ranking.popular(model, self._ranking.find(self._ranking.for_model(model), *choice.labels),
                                             lookup, request.user_id, request.offset, request.n, restriction)
                if sunk is not None:
                    return sunk
            if choice.arm is None:
                return self._pages.popular(model, request.offset, request.n, restriction)
            return model.popular(request.offset, request.n, restriction)
        return await self._submit(model, query)

    async def _submit(self, model: Model, query: RecQuery) -> Ranked:
        if self._batcher is not None:
            return await tracing.batched(self._batcher, model, query)
        # --batch-max-size 1: no batching, scored on the loop (the bare server's form)
        with tracing.span("score", {"reco.batch.size": 1}):
            return model.recommend([query])[0]

    def _online_of(self, model: Model, choice: Choice) -> Callable[[str], OnlineUser | None] | None:
        """How to find a user's online vector for this call; None when online learning is off
        (for the sidecar, or for the experiment arm that answers)."""
        online = self._online
        if online is None or not self._arms.online(choice):
            return None
        return lambda user_id: online.lookup(model, user_id)

    # -- Feedback -------------------------------------------------------------------------------

    async def feedback(self, request: reco_pb2.FeedbackRequest, facts: Facts) -> reco_pb2.FeedbackResponse:
        accepted = await self._feed(request, facts)
        return reco_pb2.FeedbackResponse(accepted=accepted.accepted, duplicates=accepted.duplicates)

    async def feedback_stream(self, requests: AsyncIterator[reco_pb2.FeedbackRequest], facts: Facts
                              ) -> reco_pb2.FeedbackResponse:
        """Each message is handed to the learner as it arrives; a refused message ends the
        call with its error, the messages before it stay accepted (their ids make a retry of
        the whole stream safe)."""
        accepted = duplicates = messages = 0
        async for request in requests:
            messages += 1
            answer = await self._feed(request, facts)
            accepted += answer.accepted
            duplicates += answer.duplicates
            facts.update(messages=messages)
        return reco_pb2.FeedbackResponse(accepted=accepted, duplicates=duplicates)

    async def _feed(self, request: reco_pb2.FeedbackRequest, facts: Facts) -> Accepted:
        if self._online is None:
            raise FailedPrecondition("online learning is off in this sidecar (serve --online-dir)", field="events")
        manager = self._models.get(request.model)
        if manager is not self._models.get(""):
            raise FailedPrecondition("online learning serves the default model only", field="model")
        received = time.monotonic()
        with manager.lease() as model:
            events = online_events(request, model.info.event_types)
            facts.update(model=model.name, version=model.version)
        answer = await self._online.submit(events)
        metrics.feedback_applied(time.monotonic() - received, answer.accepted, answer.duplicates)
        facts["events"] = facts.get("events", 0) + len(events)
        facts.update(accepted=facts.get("accepted", 0) + answer.accepted,
                     duplicates=facts.get("duplicates", 0) + answer.duplicates)
        return answer

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
            return self._pages.similar(model, request, ranked)

    # -- BatchRecommend -------------------------------------------------------------------------

    async def batch_recommend(self, request: reco_pb2.BatchRecommendRequest, facts: Facts
                              ) -> AsyncIterator[reco_pb2.BatchRecommendResponse]:
        """The whole stream is answered by the model leased here, at its start: a Reload
        meanwhile changes nothing in it (the old version stays mapped until it ends). So are
        the experiments and every model an arm answers with."""
        count = len(request.user_ids)
        if not count:
            raise InvalidArgument("must not be empty", field="user_ids")
        if count > self._limits.max_batch_users:
            raise ResourceExhausted(f"{count} users, at most {self._limits.max_batch_users} per call",
                                    field="user_ids")
        rq.check_page(request.n, 0, self._limits)
        check_explain(request.explain)
        facts.update(users=count)
        requested = self._models.get(request.model)
        with requested.lease() as model, contextlib.ExitStack() as leases:
            restriction = self._ranking.hide(self._ranking.for_model(model),
                                             rq.restriction(model, request.filter, self._limits))
            facts.update(model=model.name, version=model.version)
            # Users in an experiment get their arm, as Recommend gives it.
            arms = BatchArms(self._arms, requested, model, restriction, request, self._limits, leases,
                             restrict=lambda m, r: self._ranking.hide(self._ranking.for_model(m), r))
            stream = BatchStream(model, request, restriction, chunk=self._chunk, pages=self._pages,
                                 arms=arms if arms.active else None, served=self._arms.served, online=self._online,
                                 ranking=self._ranking)
            facts.update(sources=stream.sources)
            if arms.active:
                facts.update(arms=stream.arm_counts)  # users per "experiment/arm", in the log line
            async for message in stream.messages(self._pool):
                yield message

    # -- Reload and status ----------------------------------------------------------------------

    async def reload(self, request: reco_pb2.ReloadRequest, facts: Facts) -> reco_pb2.ReloadResponse:
        name = self._models.get(request.model).name
        with tracing.span("reload.rollout", {"reco.model": name, "reco.version_requested": request.version}):
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
        resp.store.CopyFrom(reco_pb2.StoreStatus(
            uri=store.uri, target_version=store.target_version, downloading_version=store.downloading_version,
            downloaded_bytes=store.downloaded_bytes, download_total_bytes=store.download_total_bytes,
            cached_versions=store.cached_versions, failed_version=store.failed_version, error=store.error,
            checked_at=store.checked_at))
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


def _recommend(model: Model, queries: Sequence[RecQuery]) -> list[Ranked]:
    return model.recommend(queries)
