"""The ranking rules file as a kind of rollout (rollout.py), on the same two-phase path as the
experiments file: the supervisor validates the whole file before any worker sees it; every
worker then parses and stages it beside the rules it serves (prepare), and only once all
have staged it does any worker swap it in (commit). A bad file, a worker that cannot stage
it, or a prepare that outlives the reload timeout changes no worker's answers.

Also its source: the supervisor's side that reads and checks the file (I/O the pure
rollout never does) and tells the watch whether it changed."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

from reco_sidecar.common.errors import FailedPrecondition, RecoError
from reco_sidecar.ranking import rules as rules_file
from reco_sidecar.runtime import wire
from reco_sidecar.runtime.payload import PayloadDir
from reco_sidecar.runtime.supervisor.file_reader import FileReader
from reco_sidecar.runtime.supervisor.rollout import Candidate, Rollout

RulesCandidate = Candidate[rules_file.RulesFile]


@dataclass(frozen=True)
class RulesKind:
    name: str = "rules"

    def prepare(self, generation: int, file: RulesCandidate, traceparent: str) -> wire.ToWorker:
        return wire.PrepareRules(generation, file.payload, file.content.syntax, traceparent)

    def commit(self, generation: int, traceparent: str) -> wire.ToWorker:
        return wire.CommitRules(generation, traceparent)

    def abort(self, generation: int) -> wire.ToWorker:
        return wire.AbortRules(generation)

    def replace(self, generation: int, file: RulesCandidate, traceparent: str) -> wire.ToWorker:
        return wire.SetRules(generation, file.payload, file.content.syntax, traceparent)

    def done(self, request_id: int, generation: int, file: RulesCandidate, workers: int) -> wire.RulesDone:
        return wire.RulesDone(request_id, generation, len(file.content.rule_sets), workers)


def rules_rollout(pool_size: int, timeout: float) -> Rollout[rules_file.RulesFile]:
    return Rollout(RulesKind(), pool_size, timeout)


class RulesReader(FileReader[rules_file.RulesFile]):
    """The rules file on disk, as `--rules` names it (None: not given)."""

    def __init__(self, path: pathlib.Path | None, payloads: PayloadDir) -> None:
        super().__init__(path, payloads, rules_file.read_text)

    def check(self) -> RulesCandidate | RecoError:
        if self.path is None:
            return FailedPrecondition("this sidecar was started without --rules", "rules")
        return self._checked(rules_file.load)
