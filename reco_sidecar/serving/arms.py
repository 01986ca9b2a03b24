"""Which model and arm answer a Recommend, and how an arm ranks: the request's model, or,
for a user in an experiment, the arm that assignment (experiments/assignment.py) or the QA
override picks; a stream fixes the choice's models at its start (batch_arms.py). How an arm
ranks is retrieval.py's. Shadow arms are scored off the request path (shadows.py); counting
a served arm queues them there."""

from __future__ import annotations

from dataclasses import dataclass

from reco_sidecar.experiments import assignment
from reco_sidecar.experiments.config import Arm, Experiment, ExperimentSet
from reco_sidecar.experiments.live import LiveExperiments
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.manager.manager import ModelManager
from reco_sidecar.manager.registry import ModelRegistry
from reco_sidecar.serving import metrics
from reco_sidecar.serving import request_checks as rq
from reco_sidecar.serving.shadows import Shadows


@dataclass(frozen=True)
class Choice:
    manager: ModelManager
    experiment: Experiment | None = None
    arm: Arm | None = None
    overridden: bool = False

    @property
    def labels(self) -> tuple[str, str]:
        return (self.experiment.name if self.experiment else "", self.arm.name if self.arm else "")

    @property
    def baseline(self) -> bool:
        """Whether a baseline arm answers (it ranks without the model's product)."""
        return self.arm is not None and self.arm.baseline is not None


def covers(experiment: Experiment, model: str) -> bool:
    """An experiment runs on the requests for its control's model: the first served arm that
    names a model ("" for a baseline-only experiment: the default model's requests). A
    request naming another arm's model directly is not in the experiment."""
    control = next((a.model for a in experiment.served_arms if a.model is not None), None)
    return model == (control or "")


class Arms:
    def __init__(self, registry: ModelRegistry, experiments: LiveExperiments | None) -> None:
        self._registry = registry
        self._experiments = experiments
        self._shadows = Shadows(registry, experiments, self.manager_of)

    def close(self) -> None:
        self._shadows.close()

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
        return Choice(self.manager_of(found.arm, requested), found.experiment, found.arm, found.overridden)

    def manager_of(self, arm: Arm, requested: ModelManager) -> ModelManager:
        """A model arm's model, at the version it pins, as served now; a baseline ranks the
        requested model."""
        if arm.model is None:
            return requested
        if arm.version is not None:
            return self._registry.arm_version(arm.model, arm.version)
        return self._registry.get(arm.model)

    @staticmethod
    def online(choice: Choice) -> bool:
        """Whether the arm answering serves online updates (an arm may turn them off)."""
        return choice.arm is None or choice.arm.online

    def served(self, choice: Choice, source: str, item_ids: list[str], request: reco_pb2.RecommendRequest) -> None:
        """Counts the served arm and queues its shadows (never waits for them)."""
        experiment, arm = choice.experiment, choice.arm
        if experiment is None or arm is None or self._experiments is None:
            return
        self._experiments.served(experiment.name, arm.name, overridden=choice.overridden)
        metrics.arm_served(experiment.name, arm.name, source)
        if experiment.shadow_arms:
            self._shadows.queue(experiment, request, item_ids)
