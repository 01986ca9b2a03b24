"""Shadow arms: ranked on one thread per worker, off the request path, after the served
answer is built, from a bounded queue (full: the shadow is dropped and counted), and only
compared with the served answer (overlap, rank correlation): they never change what is
returned and are never waited for."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from reco_sidecar.common import logs
from reco_sidecar.engine.model import Model
from reco_sidecar.experiments import compare
from reco_sidecar.experiments.config import Arm, Experiment
from reco_sidecar.experiments.live import LiveExperiments
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.manager.manager import ModelManager
from reco_sidecar.manager.registry import ModelRegistry
from reco_sidecar.serving import metrics
from reco_sidecar.serving import request_checks as rq
from reco_sidecar.serving.retrieval import Ask, rank_for_arm

log = logs.get(__name__)

# Shadow rankings waiting or running per worker; beyond this they are dropped (and counted),
# so a slow shadow model can never pile up work behind the served answers.
SHADOW_QUEUE = 256
# Shadow rankings scored together (one matrix product per model and arm).
SHADOW_BATCH = 64
_UNLIMITED = rq.Limits(1 << 30, 1 << 30, 1 << 30, 1 << 30)

ManagerOf = Callable[[Arm, ModelManager], ModelManager]


@dataclass(frozen=True)
class _ShadowJob:
    experiment: Experiment
    arm: Arm
    request: reco_pb2.RecommendRequest
    served_ids: list[str]


class Shadows:
    def __init__(self, registry: ModelRegistry, experiments: LiveExperiments | None, manager_of: ManagerOf) -> None:
        self._registry = registry
        self._experiments = experiments
        self._manager_of = manager_of
        self._jobs: queue.Queue[_ShadowJob | None] = queue.Queue(maxsize=SHADOW_QUEUE)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def close(self) -> None:
        if self._thread is not None:
            with contextlib.suppress(queue.Full):
                self._jobs.put_nowait(None)

    def queue(self, experiment: Experiment, request: reco_pb2.RecommendRequest, served_ids: list[str]) -> None:
        """Every shadow arm of `experiment` for this served answer; never waits."""
        assert self._experiments is not None
        self._ensure_thread()
        for shadow in experiment.shadow_arms:
            try:
                self._jobs.put_nowait(_ShadowJob(experiment, shadow, request, served_ids))
            except queue.Full:
                self._experiments.shadow_dropped(experiment.name, shadow.name)
                metrics.shadow_dropped(experiment.name, shadow.name)

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="shadow", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
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
        groups: dict[tuple[int, str, str], tuple[ModelManager, list[_ShadowJob]]] = {}
        for job in jobs:
            try:
                manager = self._manager_of(job.arm, self._registry.get(job.request.model))
            except Exception as e:  # a pinned version dropped by a rollout since it was queued
                log.debug("shadow_skipped", arm=job.arm.name, error=str(e))
                continue
            key = (id(manager), job.experiment.name, job.arm.name)
            groups.setdefault(key, (manager, []))[1].append(job)
        for manager, group in groups.values():
            name = manager.name
            try:
                with manager.lease() as model:
                    asks, kept = self._asks(model, group)
                    first = kept[0] if kept else None
                    rankings = (rank_for_arm(model, first.arm, first.experiment, asks, fallback=True)
                                if first is not None else [])
                    ids = model.items.ids
                    lists = [[ids[r] for r in ranked.rows.tolist()] if ranked is not None else None
                             for ranked in rankings]
            except Exception as e:  # a shadow must never affect serving; it is only measured
                log.warning("shadow_failed", model=name, error=str(e))
                continue
            for job, shadow_ids in zip(kept, lists, strict=True):
                if shadow_ids is None:
                    continue
                overlap = compare.overlap(job.served_ids, shadow_ids)
                correlation = compare.rank_correlation(job.served_ids, shadow_ids)
                assert self._experiments is not None
                self._experiments.shadow(job.experiment.name, job.arm.name, overlap, correlation)
                metrics.shadow_compared(job.experiment.name, job.arm.name, overlap, correlation)

    @staticmethod
    def _asks(model: Model, group: list[_ShadowJob]) -> tuple[list[Ask], list[_ShadowJob]]:
        """What each job's arm ranks on `model`, and the jobs that can be ranked."""
        asks, kept = [], []
        for job in group:
            request = job.request
            try:
                # The request passed its checks on the served path; only the model differs here.
                restriction = rq.restriction(model, request.filter, _UNLIMITED)
                query = (None if job.arm.baseline is not None
                         else rq.recommend_query(model, request, _UNLIMITED, restriction))
            except Exception as e:  # e.g. an unknown user with disable_fallback on this model
                log.debug("shadow_skipped", arm=job.arm.name, error=str(e))
                continue
            asks.append(Ask(request.user_id, request.offset, request.n, restriction, request.filter.include_seen,
                            query))
            kept.append(job)
        return asks, kept
