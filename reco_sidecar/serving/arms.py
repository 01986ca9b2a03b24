"""Which model and arm answer a Recommend: the request's model, or, for a user in an
experiment, the arm that assignment (experiments/assignment.py) or the QA override picks.
Shadow arms are scored on a small bounded pool off the request path, after the served answer
is computed, and only compared with it: they never change or delay what is returned."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from reco_sidecar.common import logs
from reco_sidecar.engine.model import Model
from reco_sidecar.engine.query import Ranked, Restriction
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
SHADOW_QUEUE = 32
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
    """An experiment runs on the traffic of the models its arms name (a baseline-only
    experiment on the default model's)."""
    named = {a.model for a in experiment.arms if a.model is not None}
    return model in named if named else model == ""


class Arms:
    def __init__(self, registry: ModelRegistry, experiments: LiveExperiments | None,
                 rank: Callable[[Model, reco_pb2.RecommendRequest], Ranked]) -> None:
        self._registry = registry
        self._experiments = experiments
        self._rank = rank
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow")
        self._slots = threading.BoundedSemaphore(SHADOW_QUEUE)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def choose(self, request: reco_pb2.RecommendRequest) -> Choice:
        requested = self._registry.get(request.model)  # NotFound for a model not served
        live = self._experiments
        if live is None or not (live.current.experiments or request.experiment or request.arm):
            if request.experiment or request.arm:
                rq.check_id(request.user_id, "user_id")
            return Choice(requested)
        rq.check_id(request.user_id, "user_id")
        current = live.current
        if not request.experiment:
            default = requested.name == self._registry.default
            current = ExperimentSet(tuple(e for e in current.experiments
                                          if covers(e, requested.name) or (default and covers(e, ""))))
        found = assignment.resolve(current, request.user_id, experiment=request.experiment, arm=request.arm)
        if found is None:
            return Choice(requested)
        manager = self._registry.get(found.arm.model) if found.arm.model else requested
        return Choice(manager, found.experiment, found.arm, found.overridden)

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
        for shadow in experiment.shadow_arms:
            if not self._slots.acquire(blocking=False):
                self._experiments.shadow_dropped(experiment.name, shadow.name)
                metrics.shadow_dropped(experiment.name, shadow.name)
                continue
            try:
                self._pool.submit(self._shadow, experiment, shadow, request, item_ids)
            except RuntimeError:  # shutting down
                self._slots.release()

    def _shadow(self, experiment: Experiment, shadow: Arm, request: reco_pb2.RecommendRequest,
                served_ids: list[str]) -> None:
        try:
            manager = self._registry.get(shadow.model) if shadow.model else self._registry.get(request.model)
            with manager.lease() as model:
                choice = Choice(manager, experiment, shadow)
                # The request passed its checks on the served path; only the model differs here.
                restriction = rq.restriction(model, request.filter, _UNLIMITED)
                ranked = self.rank(choice, model, request, restriction) or self._rank(model, request)
                ids = model.items.ids
                shadow_ids = [ids[r] for r in ranked.rows.tolist()]
            overlap = compare.overlap(served_ids, shadow_ids)
            correlation = compare.rank_correlation(served_ids, shadow_ids)
            assert self._experiments is not None
            self._experiments.shadow(experiment.name, shadow.name, overlap, correlation)
            metrics.shadow_compared(experiment.name, shadow.name, overlap, correlation)
        except Exception as e:  # a shadow must never affect serving; it is only measured
            log.warning("shadow_failed", experiment=experiment.name, arm=shadow.name, error=str(e))
        finally:
            self._slots.release()
