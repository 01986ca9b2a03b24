"""BatchRecommend with experiments: each user is answered by the arm Recommend would give
them (the same assignment), so a batch job keeps every user in their arm. The experiments,
and every model an arm answers with (at the version it pins), are taken once, at the
stream's start, like the requested model: the stream never looks an arm's model up again, so
a rollout or a Reload during the stream changes nothing in it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from reco_sidecar.engine.model import Model
from reco_sidecar.engine.query import Restriction
from reco_sidecar.experiments import assignment
from reco_sidecar.experiments.config import ExperimentSet
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.manager.manager import ModelManager
from reco_sidecar.serving import request_checks as rq
from reco_sidecar.serving.arms import Arms, Choice


@dataclass(frozen=True)
class Target:
    """The model, leased for the stream, an arm answers with, and the request's filter on it."""

    model: Model
    restriction: Restriction


class BatchArms:
    def __init__(self, arms: Arms, requested: ModelManager, model: Model, restriction: Restriction,
                 request: reco_pb2.BatchRecommendRequest, limits: rq.Limits, leases: contextlib.ExitStack,
                 restrict: Callable[[Model, Restriction], Restriction] = lambda _model, r: r) -> None:
        self._arms = arms
        self._requested = requested
        self._request = request
        self.experiments: ExperimentSet = arms.covering(requested)
        self._targets: dict[int, Target] = {id(requested): Target(model, restriction)}
        # (experiment, arm) -> the manager it answers with, as served at the stream's start
        self._managers: dict[tuple[str, str], ModelManager] = {}
        for e in self.experiments.experiments:
            for a in e.served_arms:
                manager = self._managers[(e.name, a.name)] = arms.manager_of(a, requested)
                if id(manager) not in self._targets:
                    other = leases.enter_context(manager.lease())
                    # `restrict`: what every answer leaves out besides the filter (hidden items)
                    self._targets[id(manager)] = Target(other, restrict(other, rq.restriction(other, request.filter,
                                                                                                limits)))

    @property
    def active(self) -> bool:
        return bool(self.experiments.experiments)

    def choose(self, user_id: str) -> Choice:
        found = assignment.resolve(self.experiments, user_id)
        if found is None:
            return Choice(self._requested)
        manager = self._managers[(found.experiment.name, found.arm.name)]
        return Choice(manager, found.experiment, found.arm, found.overridden)

    def on_requested(self, choice: Choice) -> bool:
        """Whether the requested model's own product answers this user, in the chunk's one
        matrix product."""
        return choice.arm is None or (not choice.baseline and choice.manager is self._requested)

    def target(self, choice: Choice) -> Target:
        return self._targets[id(choice.manager)]

    def shadow_request(self, user_id: str) -> reco_pb2.RecommendRequest:
        r = self._request
        return reco_pb2.RecommendRequest(model=r.model, user_id=user_id, n=r.n, filter=r.filter,
                                         disable_fallback=r.disable_fallback)
