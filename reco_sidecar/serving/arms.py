"""Which model and arm answer a Recommend: the request's model, or, for a user in an
experiment, the arm that assignment (experiments/assignment.py) or the QA override picks.
Shadow arms are ranked on one thread per worker, off the request path, after the
served answer is built, from a bounded queue (full: the shadow is dropped and counted), and
only compared with it: they never change what is returned and are never waited for."""

from __future__ import annotations

import contextlib
import queue
import threading
from dataclasses import dataclass

from reco_sidecar.common import logs
from reco_sidecar.engine.model import Model
from reco_sidecar.engine.query import Ranked, RecQuery, Restriction
from reco_sidecar.experiments import assignment, baselines, compare
from reco_sidecar.experiments.config import Arm, Experiment, ExperimentSet
from reco_sidecar.experiments.live import LiveExperiments
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.manager.manager import ModelManager
from reco_sidecar.manager.registry import ModelRegistry
from reco_sidecar.serving import metrics
from reco_sidecar.serving import request_checks as rq

log = logs.get(__name__)

# Shadow rankings waiting or running per worker; beyond this they are dropped (and counted),
# so a slow shadow model can never pile up work behind the served answers.
SHADOW_QUEUE = 256
# Shadow rankings scored together (one matrix product per model).
SHADOW_BATCH = 64
_UNLIMITED = rq.Limits(1 << 30, 1 << 30, 1 << 30, 1 << 30)


@dataclass(frozen=True)
class Choice:
    manager: ModelManager
    experiment: Experiment | None = None
    arm: Arm | None = None
    overridden: bool = False

    @property
    def labels(self) -> tuple[str, str]:
        return (self.experiment.name if self.experiment else "", self.arm.name if self.arm else "")


def covers(experiment: Experiment, model: str) -> bool:
    """An experiment runs on the requests for its control's model: the first served arm that
    names a model ("" for a baseline-only experiment: the default model's requests). A
    request naming another arm's model directly is not in the experiment."""
    control = next((a.model for a in experiment.served_arms if a.model is not None), None)
    return model == (control or "")


@dataclass(frozen=True)
class _ShadowJob:
    experiment: Experiment
    arm: Arm
    request: reco_pb2.RecommendRequest
    served_ids: list[str]


class Arms:
    def __init__(self, registry: ModelRegistry, experiments: LiveExperiments | None) -> None:
        self._registry = registry
        self._experiments = experiments
        self._jobs: queue.Queue[_ShadowJob | None] = queue.Queue(maxsize=SHADOW_QUEUE)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def close(self) -> None:
        if self._thread is not None:
            with contextlib.suppress(queue.Full):
                self._jobs.put_nowait(None)

    def choose(self, request: reco_pb2.RecommendRequest) -> Choice:
        requested = self._registry.get(request.model)  # NotFound for a model not served
        live = self._experiments
        if live is None or not (live.current.experiments or request.experiment or request.arm):
            if request.experiment or request.arm:
                rq.check_id(request.user_id, "user_id")
                assignment.resolve(ExperimentSet(), request.user_id, experiment=request.experiment,
                                   arm=request.arm)  # raises, naming the field
            return Choice(requested)
        rq.check_id(request.user_id, "user_id")
        current = live.current if request.experiment else self.covering(requested)
        return self.assign(current, requested, request.user_id, experiment=request.experiment, arm=request.arm)

    def covering(self, requested: ModelManager) -> ExperimentSet:
        """The experiments that run on requests for `requested`, as served now."""
        live = self._experiments
        if live is None:
            return ExperimentSet()
        default = requested.name == self._registry.default
        return ExperimentSet(tuple(e for e in live.current.experiments
                                   if covers(e, requested.name) or (default and covers(e, ""))))

    def assign(self, experiments: ExperimentSet, requested: ModelManager, user_id: str, *, experiment: str = "",
               arm: str = "") -> Choice:
        found = assignment.resolve(experiments, user_id, experiment=experiment, arm=arm)
        if found is None:
            return Choice(requested)
        return Choice(self._manager_of(found.arm, requested), found.experiment, found.arm, found.overridden)

    def managers(self, experiments: ExperimentSet, requested: ModelManager) -> list[ModelManager]:
        """Every manager an arm of `experiments` answers with (for a stream to lease them once)."""
        out: dict[int, ModelManager] = {}
        for e in experiments.experiments:
            for a in e.served_arms:
                manager = self._manager_of(a, requested)
                out[id(manager)] = manager
        return list(out.values())

    def _manager_of(self, arm: Arm, requested: ModelManager) -> ModelManager:
        """A model arm's model, at the version it pins; a baseline ranks the requested model."""
        if arm.model is None:
            return requested
        if arm.version is not None:
            return self._registry.pinned(arm.model, arm.version)
        return self._registry.get(arm.model)

    @staticmethod
    def online(choice: Choice) -> bool:
        """Whether the arm answering serves online updates (an arm may turn them off)."""
        return choice.arm is None or choice.arm.online

    def rank(self, choice: Choice, model: Model, request: reco_pb2.RecommendRequest, restriction: Restriction
             ) -> Ranked | None:
        """A baseline arm's answer; None when the model itself ranks (the caller's batcher)."""
        arm = choice.arm
        if arm is None or arm.baseline is None or choice.experiment is None:
            return None
        if arm.baseline == "random":
            return baselines.random(model, request.user_id, choice.experiment.salt, request.offset, request.n,
                                    restriction, request.filter.include_seen)
        return baselines.popular(model, request.user_id, request.offset, request.n, restriction,
                                 request.filter.include_seen)

    def served(self, choice: Choice, source: str, item_ids: list[str], request: reco_pb2.RecommendRequest) -> None:
        """Counts the served arm and queues its shadows (never waits for them)."""
        experiment, arm = choice.experiment, choice.arm
        if experiment is None or arm is None or self._experiments is None:
            return
        self._experiments.served(experiment.name, arm.name, overridden=choice.overridden)
        metrics.arm_served(experiment.name, arm.name, source)
        shadows = experiment.shadow_arms
        if not shadows:
            return
        self._ensure_thread()
        for shadow in shadows:
            try:
                self._jobs.put_nowait(_ShadowJob(experiment, shadow, request, item_ids))
            except queue.Full:
                self._experiments.shadow_dropped(experiment.name, shadow.name)
                metrics.shadow_dropped(experiment.name, shadow.name)

    # -- shadows, on their own thread -------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._shadow_loop, name="shadow", daemon=True)
                self._thread.start()

    def _shadow_loop(self) -> None:
        # Not niced: a low-priority thread preempted while it holds the GIL would stall every
        # served call behind it (measured: p99 x12 at a fixed rate on a busy machine).
        while True:
            job = self._jobs.get()
            if job is None:
                return
            jobs = [job]
            # Whatever else is queued is scored with it: one product for all of a model's users.
            while len(jobs) < SHADOW_BATCH:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._score(jobs)
                    return
                jobs.append(more)
            self._score(jobs)

    def _score(self, jobs: list[_ShadowJob]) -> None:
        by_manager: dict[int, tuple[ModelManager, list[_ShadowJob]]] = {}
        for job in jobs:
            try:
                manager = self._manager_of(job.arm, self._registry.get(job.request.model))
            except Exception as e:  # a pinned version dropped by a rollout since it was queued
                log.debug("shadow_skipped", arm=job.arm.name, error=str(e))
                continue
            by_manager.setdefault(id(manager), (manager, []))[1].append(job)
        for manager, group in by_manager.values():
            name = manager.name
            try:
                with manager.lease() as model:
                    rankings = self._rank_group(model, group)
                    ids = model.items.ids
                    lists = [[ids[r] for r in ranked.rows.tolist()] if ranked is not None else None
                             for ranked in rankings]
            except Exception as e:  # a shadow must never affect serving; it is only measured
                log.warning("shadow_failed", model=name, error=str(e))
                continue
            for job, shadow_ids in zip(group, lists, strict=True):
                if shadow_ids is None:
                    continue
                overlap = compare.overlap(job.served_ids, shadow_ids)
                correlation = compare.rank_correlation(job.served_ids, shadow_ids)
                assert self._experiments is not None
                self._experiments.shadow(job.experiment.name, job.arm.name, overlap, correlation)
                metrics.shadow_compared(job.experiment.name, job.arm.name, overlap, correlation)

    def _rank_group(self, model: Model, group: list[_ShadowJob]) -> list[Ranked | None]:
        out: list[Ranked | None] = [None] * len(group)
        queries: list[tuple[int, RecQuery]] = []
        for k, job in enumerate(group):
            request = job.request
            try:
                # The request passed its checks on the served path; only the model differs here.
                restriction = rq.restriction(model, request.filter, _UNLIMITED)
                choice = Choice(self._registry.get(job.request.model), job.experiment, job.arm)
                baseline = self.rank(choice, model, request, restriction)
                if baseline is not None:
                    out[k] = baseline
                    continue
                query = rq.recommend_query(model, request, _UNLIMITED, restriction)
            except Exception as e:  # e.g. an unknown user with disable_fallback on this model
                log.debug("shadow_skipped", arm=job.arm.name, error=str(e))
                continue
            if query is None:
                out[k] = model.popular(request.offset, request.n, restriction)
            else:
                queries.append((k, query))
        if queries:
            for (k, _), ranked in zip(queries, model.recommend([q for _, q in queries]), strict=True):
                out[k] = ranked
        return out
