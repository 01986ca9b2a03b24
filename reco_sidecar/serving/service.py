"""The gRPC servicer: proto in, domain calls, proto out. The only module that knows
gRPC status codes; every domain error becomes a precise status naming the field."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
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
from reco_sidecar.engine.query import Ranked, RecQuery, Source
from reco_sidecar.experiments.live import LiveExperiments
from reco_sidecar.gen.reco.v1 import reco_pb2, reco_pb2_grpc
from reco_sidecar.manager.manager import ModelManager, VersionState
from reco_sidecar.manager.registry import ModelRegistry
from reco_sidecar.serving import callinfo, status
from reco_sidecar.serving import request_checks as rq
from reco_sidecar.serving.arms import Arms
from reco_sidecar.serving.batcher import Batcher
from reco_sidecar.serving.jsonld import Renderer

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
STATE_PB = {
    VersionState.LOADING: reco_pb2.MODEL_STATE_LOADING,
    VersionState.AVAILABLE: reco_pb2.MODEL_STATE_AVAILABLE,
    VersionState.UNLOADING: reco_pb2.MODEL_STATE_UNLOADING,
    VersionState.FAILED: reco_pb2.MODEL_STATE_FAILED,
    VersionState.END: reco_pb2.MODEL_STATE_END,
}


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
    def reload(self, model: str, version: VersionSpec) -> ReloadOutcome: ...


def _no_experiments_file() -> ExperimentsOutcome:
    raise FailedPrecondition("this sidecar was started without --experiments", field="experiments")


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


class RecommenderService(reco_pb2_grpc.RecommenderServicer):
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
        on_activity: Callable[[], None] = lambda: None,
        on_batch: Callable[[int], None] | None = None,
        store_status: Callable[[], dict[str, Any] | None] = lambda: None,
        experiments: LiveExperiments | None = None,
        reload_experiments: Callable[[], ExperimentsOutcome] = _no_experiments_file,
    ) -> None:
        self._models = models if isinstance(models, ModelRegistry) else ModelRegistry.single(models)
        self._manager = self._models.get("")
        self._experiments = experiments
        self._reload_experiments = reload_experiments
        self._arms = Arms(self._models, experiments)
        self._limits = limits
        self._renderer = renderer
        self._reloader = reloader
        self._topology = topology
        self._on_activity = on_activity
        self._store_status = store_status
        self._chunk = batch_chunk
        self._batcher: Batcher[Model, RecQuery, Ranked] | None = None
        if batch_max_size > 1:
            self._batcher = Batcher(lambda m, qs: m.recommend(qs), max_delay=batch_max_delay,
                                    max_size=batch_max_size, on_batch=on_batch)
        # BatchRecommend scores two chunks at once: numpy drops the GIL in the product and top-k.
        self._chunk_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="chunk")
        self._reload_lock = threading.Lock()

    def close(self) -> None:
        self._arms.close()
        if self._batcher is not None:
            self._batcher.close()
        self._chunk_pool.shutdown(wait=False, cancel_futures=True)

    @contextmanager
    def _call(self, context: grpc.ServicerContext) -> Iterator[None]:
        self._on_activity()
        try:
            yield
        except RecoError as e:
            context.abort(status_code(e), str(e))
        except ValueError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))

    def _items(self, model: Model, ranked: Ranked, offset: int) -> list[reco_pb2.ScoredItem]:
        ids = model.items.ids
        return [
            reco_pb2.ScoredItem(item_id=ids[row], score=score, rank=offset + i + 1)
            for i, (row, score) in enumerate(zip(ranked.rows.tolist(), ranked.scores.tolist(), strict=True))
        ]

    def _jsonld(self, model: Model, ranked: Ranked, offset: int, about: str | None = None,
                experiment: str = "", arm: str = "") -> str:
        ids = model.items.ids
        return self._renderer.render(
            model=model.name, version=model.version, source=ranked.source.value,
            item_ids=[ids[r] for r in ranked.rows.tolist()], scores=ranked.scores.tolist(),
            first_position=offset + 1, about=about, experiment=experiment, arm=arm,
        )

    # -- Recommend ----------------------------------------------------------------------------

    def Recommend(self, request: reco_pb2.RecommendRequest, context: grpc.ServicerContext
                  ) -> reco_pb2.RecommendResponse:
        batcher = self._batcher
        announced = batcher is not None
        if batcher is not None:
            batcher.announce()
        try:
            with self._call(context):
                choice = self._arms.choose(request)
                experiment, arm = choice.labels
                if arm:
                    callinfo.annotate(experiment=experiment, arm=arm)
                with choice.manager.lease() as model:
                    rq.check_page(request.n, request.offset, self._limits)
                    restriction = rq.restriction(model, request.filter, self._limits)
                    ranked = self._arms.rank(choice, model, request, restriction)
                    query = None if ranked is not None else rq.recommend_query(model, request, self._limits,
                                                                               restriction)
                    if ranked is not None:
                        pass
                    elif query is None:
                        ranked = model.popular(request.offset, request.n, restriction)
                    elif batcher is not None:
                        announced = False
                        ranked = batcher.submit(model, query)
                    else:
                        ranked = model.recommend([query])[0]
                    callinfo.annotate(model=model.name, version=model.version, users=1, items=len(ranked.rows),
                                      source=ranked.source.value)
                    response = reco_pb2.RecommendResponse(
                        model=model.name, version=model.version, user_id=request.user_id,
                        items=self._items(model, ranked, request.offset), source=SOURCE_PB[ranked.source],
                        jsonld=self._jsonld(model, ranked, request.offset, experiment=experiment, arm=arm),
                        experiment=experiment, arm=arm,
                    )
                # Shadows are queued after the answer is built and never waited for.
                self._arms.served(choice, ranked.source.value, [i.item_id for i in response.items], request)
                return response
        finally:
            if announced and batcher is not None:
                batcher.withdraw()
        raise AssertionError("unreachable: context.abort raises")

    # -- Similar ------------------------------------------------------------------------------

    def Similar(self, request: reco_pb2.SimilarRequest, context: grpc.ServicerContext) -> reco_pb2.SimilarResponse:
        with self._call(context), self._models.get(request.model).lease() as model:
            rq.check_id(request.item_id, "item_id")
            rq.check_page(request.n, request.offset, self._limits)
            row = model.items.row(request.item_id)
            if row is None:
                raise NotFound(f"unknown item {request.item_id!r}", field="item_id")
            restriction = rq.restriction(model, request.filter, self._limits)
            ranked = model.similar(row, request.offset, request.n, restriction)
            callinfo.annotate(model=model.name, version=model.version, items=len(ranked.rows))
            return reco_pb2.SimilarResponse(
                model=model.name, version=model.version, item_id=request.item_id,
                items=self._items(model, ranked, request.offset), source=SOURCE_PB[ranked.source],
                jsonld=self._jsonld(model, ranked, request.offset, about=request.item_id),
            )
        raise AssertionError("unreachable: context.abort raises")

    # -- BatchRecommend -------------------------------------------------------------------------

    def BatchRecommend(self, request: reco_pb2.BatchRecommendRequest, context: grpc.ServicerContext
                       ) -> Iterator[reco_pb2.BatchRecommendResponse]:
        with self._call(context):
            if not len(request.user_ids):
                raise InvalidArgument("must not be empty", field="user_ids")
            if len(request.user_ids) > self._limits.max_batch_users:
                raise ResourceExhausted(f"{len(request.user_ids)} users, at most "
                                        f"{self._limits.max_batch_users} per call", field="user_ids")
            rq.check_page(request.n, 0, self._limits)
            with self._models.get(request.model).lease() as model:
                rq.restriction(model, request.filter, self._limits)  # validate once, before streaming
            callinfo.annotate(users=len(request.user_ids))
        ids = request.user_ids
        starts = range(0, len(ids), self._chunk)
        pending = []
        for start in starts:
            if not context.is_active():
                return
            pending.append(self._chunk_pool.submit(self._score_chunk, request, start))
            if len(pending) < 2:
                continue
            yield from pending.pop(0).result()
        for future in pending:
            if not context.is_active():
                return
            yield from future.result()

    def _score_chunk(self, request: reco_pb2.BatchRecommendRequest, start: int
                     ) -> list[reco_pb2.BatchRecommendResponse]:
        ids = request.user_ids[start : start + self._chunk]
        with self._models.get(request.model).lease() as model:
            restriction = rq.restriction(model, request.filter, self._limits)
            callinfo.annotate(model=model.name, version=model.version)
            rows = [model.users.row(u) for u in ids]
            known = [i for i, r in enumerate(rows) if r is not None]
            queries = [RecQuery(0, request.n, restriction, user_row=rows[i],
                                include_seen=request.filter.include_seen) for i in known]
            ranked: list[Ranked | None] = [None] * len(ids)
            for i, result in zip(known, model.recommend(queries) if queries else [], strict=True):
                ranked[i] = result
            popular = None
            out = []
            for i, user_id in enumerate(ids):
                resp = reco_pb2.BatchRecommendResponse(model=model.name, version=model.version, user_id=user_id,
                                                       index=start + i)
                r = ranked[i]
                if r is None and request.disable_fallback:
                    resp.error.code = "NOT_FOUND"
                    resp.error.message = f"user_id: unknown user {user_id!r}"
                    out.append(resp)
                    continue
                if r is None:
                    popular = popular or model.popular(0, request.n, restriction)
                    r = popular
                resp.items.extend(self._items(model, r, 0))
                resp.source = SOURCE_PB[r.source]
                if request.include_jsonld:
                    resp.jsonld = self._jsonld(model, r, 0)
                out.append(resp)
            return out

    # -- Reload and status ------------------------------------------------------------------------

    def Reload(self, request: reco_pb2.ReloadRequest, context: grpc.ServicerContext) -> reco_pb2.ReloadResponse:
        with self._call(context):
            name = self._models.get(request.model).name
            outcome = self._reloader.reload(name, parse_version_spec(request.version))
            callinfo.annotate(model=name, version=outcome.new_version)
            return reco_pb2.ReloadResponse(
                model=name, old_version=outcome.old_version, new_version=outcome.new_version,
                load_seconds=outcome.load_seconds, workers=outcome.workers,
            )
        raise AssertionError("unreachable: context.abort raises")

    def GetModelStatus(self, request: reco_pb2.GetModelStatusRequest, context: grpc.ServicerContext
                       ) -> reco_pb2.GetModelStatusResponse:
        with self._call(context):
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
            self._add_store(resp)
            return resp
        raise AssertionError("unreachable: context.abort raises")

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

    def ListExperiments(self, request: reco_pb2.ListExperimentsRequest, context: grpc.ServicerContext
                        ) -> reco_pb2.ListExperimentsResponse:
        with self._call(context):
            me = self._topology.me()
            resp = reco_pb2.ListExperimentsResponse(worker=reco_pb2.WorkerInfo(pid=me.pid, address=me.address))
            if self._experiments is not None:
                status.experiments(resp, self._experiments.snapshot())
            return resp
        raise AssertionError("unreachable: context.abort raises")

    def ReloadExperiments(self, request: reco_pb2.ReloadExperimentsRequest, context: grpc.ServicerContext
                          ) -> reco_pb2.ReloadExperimentsResponse:
        with self._call(context):
            outcome = self._reload_experiments()
            callinfo.annotate(generation=outcome.generation)
            return reco_pb2.ReloadExperimentsResponse(generation=outcome.generation,
                                                      experiments=outcome.experiments, workers=outcome.workers)
        raise AssertionError("unreachable: context.abort raises")
