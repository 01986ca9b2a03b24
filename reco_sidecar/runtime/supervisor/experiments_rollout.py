"""The experiments file as a kind of rollout (rollout.py): its messages, and its source, the
supervisor's side that reads and checks the file (I/O the pure rollout never does) and
tells the watch whether it changed."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Collection
from dataclasses import dataclass

from reco_sidecar.common.errors import FailedPrecondition, RecoError
from reco_sidecar.experiments import checks, config
from reco_sidecar.runtime import wire
from reco_sidecar.runtime.payload import PayloadDir
from reco_sidecar.runtime.supervisor.file_reader import FileReader
from reco_sidecar.runtime.supervisor.rollout import Candidate, Rollout

ExperimentsCandidate = Candidate[checks.ExperimentsFile]


@dataclass(frozen=True)
class ExperimentsKind:
    name: str = "experiments"

    def prepare(self, generation: int, file: ExperimentsCandidate, traceparent: str) -> wire.ToWorker:
        return wire.PrepareExperiments(generation, file.payload, file.content.syntax, traceparent)

    def commit(self, generation: int, traceparent: str) -> wire.ToWorker:
        return wire.CommitExperiments(generation, traceparent)

    def abort(self, generation: int) -> wire.ToWorker:
        return wire.AbortExperiments(generation)

    def replace(self, generation: int, file: ExperimentsCandidate, traceparent: str) -> wire.ToWorker:
        return wire.SetExperiments(generation, file.payload, file.content.syntax, traceparent)

    def done(self, request_id: int, generation: int, file: ExperimentsCandidate, workers: int
             ) -> wire.ExperimentsDone:
        return wire.ExperimentsDone(request_id, generation, len(file.content.experiments.experiments), workers)


def experiments_rollout(pool_size: int, timeout: float) -> Rollout[checks.ExperimentsFile]:
    return Rollout(ExperimentsKind(), pool_size, timeout)


class ExperimentsReader(FileReader[checks.ExperimentsFile]):
    """The experiments file on disk, as `--experiments` names it (None: not given)."""

    def __init__(self, path: pathlib.Path | None, payloads: PayloadDir) -> None:
        super().__init__(path, payloads, config.read_text)

    def check(self, models: Collection[str], versions_of: Callable[[str], Collection[int]]
              ) -> ExperimentsCandidate | RecoError:
        if self.path is None:
            return FailedPrecondition("this sidecar was started without --experiments", "experiments")
        return self._checked(lambda path: checks.read_checked(path, models, versions_of))
