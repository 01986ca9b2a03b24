"""BatchRecommend with experiments: each user is answered by the arm Recommend would give
them (the same assignment), so a batch job keeps every user in their arm. The experiments and
every model an arm answers with are taken once, at the stream's start, like the requested
model: a rollout or a Reload during the stream changes nothing in it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from reco_sidecar.engine.model import Model
from reco_sidecar.engine.query import Ranked, RecQuery, Restriction
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
        for manager in arms.managers(self.experiments, requested):
            if id(manager) not in self._targets:
                other = leases.enter_context(manager.lease())
                # `restrict`: what every answer leaves out besides the filter (hidden items)
                self._targets[id(manager)] = Target(other, restrict(other, rq.restriction(other, request.filter,
                                                                                            limits)))

    @property
    def active(self) -> bool:
        return bool(self.experiments.experiments)

    def choose(self, user_id: str) -> Choice:
        return self._arms.assign(self.experiments, self._requested, user_id)

    def on_requested(self, choice: Choice) -> bool:
        """Whether the requested model's own chunk product answers this user."""
        arm = choice.arm
        return arm is None or (arm.baseline is None and choice.manager is self._requested)

    def target(self, choice: Choice) -> Target:
        return self._targets[id(choice.manager)]

    def shadow_request(self, user_id: str) -> reco_pb2.RecommendRequest:
        r = self._request
        return reco_pb2.RecommendRequest(model=r.model, user_id=user_id, n=r.n, filter=r.filter,
                                         disable_fallback=r.disable_fallback)

    def rank_other(self, choice: Choice, user_ids: list[str]) -> list[Ranked | None]:
        """Users of one arm whose answer does not come from the requested model's chunk
        product: a baseline arm, or another model or version. None: unknown user with
        disable_fallback."""
        target = self.target(choice)
        model, request = target.model, self._request
        out: list[Ranked | None] = [None] * len(user_ids)
        queries: list[tuple[int, RecQuery]] = []
        for k, user_id in enumerate(user_ids):
            baseline = self._arms.rank(choice, model, self.shadow_request(user_id), target.restriction)
            if baseline is not None:
                out[k] = baseline
                continue
            row = model.users.row(user_id)
            if row is None:
                if not request.disable_fallback:
                    out[k] = model.popular(0, request.n, target.restriction)
                continue
            queries.append((k, RecQuery(0, request.n, target.restriction, user_row=row,
                                        include_seen=request.filter.include_seen)))
        if queries:
            for (k, _), ranked in zip(queries, model.recommend([q for _, q in queries]), strict=True):
                out[k] = ranked
        return out
