"""Rolling out the ranking rules file to every worker, all or nothing (no I/O: the supervisor
sends what it returns), on the experiments rollout's path (experiments_rollout.py) minus its prepare phase.

1. The supervisor reads and validates the whole file before any worker sees it; a bad file is
   refused naming the field and every worker keeps the rules it serves.
2. A good file becomes the pool's (a worker forked from here on boots with it) and is sent to
   every worker, which swaps it in at once: rules open no files, so once validated there is
   nothing left for a worker to refuse, and experiments' prepare phase has no work here.
3. The requester is answered when every worker serves it, or refused (the file still rolls
   out) when one has not confirmed within the reload timeout.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field

from reco_sidecar.common.errors import ErrorKind, RecoError
from reco_sidecar.ranking import rules as rules_file
from reco_sidecar.runtime import wire as m
from reco_sidecar.runtime.payload import PayloadDir
from reco_sidecar.runtime.supervisor.rollout import Outcome as Outcome
from reco_sidecar.runtime.supervisor.transaction import Requester
from reco_sidecar.runtime.supervisor.transaction import Send as Send


@dataclass(frozen=True)
class Answer:
    requester: Requester
    message: m.RulesDone | m.ReloadRefused


Action = Send | Answer | Outcome


@dataclass
class Proposal:
    generation: int
    requester: Requester | None
    started: float
    waiting: set[int]
    traceparent: str = ""  # the requester's trace: each worker's swap joins it


@dataclass
class RulesRollout:
    path: pathlib.Path | None
    pool_size: int
    timeout: float
    # Where the file crosses to the workers (it can be larger than a control frame).
    payloads: PayloadDir = field(default_factory=PayloadDir)
    current: rules_file.RulesFile = field(default_factory=rules_file.RulesFile.empty)
    generation: int = 0
    ready: set[int] = field(default_factory=set)
    proposal: Proposal | None = None
    refused: str | None = ""  # the last refused text, so --watch reports a bad file once

    @property
    def busy(self) -> bool:
        return self.proposal is not None

    def file_changed(self) -> bool:
        if self.path is None:
            return False
        try:
            text: str | None = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = None
        return text != self.current.text and text != self.refused

    def asked(self, requester: Requester | None, now: float, traceparent: str = "") -> list[Action]:
        if self.path is None:
            return self._refuse(requester, ErrorKind.FAILED_PRECONDITION,
                                "this sidecar was started without --rules", "rules")
        if self.proposal is not None:
            return self._refuse(requester, ErrorKind.UNAVAILABLE,
                                f"rules rollout {self.proposal.generation} is in progress; try again", "rules")
        try:
            loaded = rules_file.load(self.path)
        except RecoError as e:
            try:
                self.refused = self.path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                self.refused = None
            return self._refuse(requester, ErrorKind.FAILED_PRECONDITION,
                                f"{e}; still serving the previous rules", e.field)
        self.refused = ""
        self.current, self.generation = loaded, self.generation + 1
        self.proposal = Proposal(self.generation, requester, now, set(range(self.pool_size)), traceparent)
        message = self._message()
        self.payloads.keep_only([message.payload])
        return [Send(slot, message) for slot in sorted(self.ready)]

    def _message(self) -> m.SetRules:
        traceparent = self.proposal.traceparent if self.proposal is not None else ""
        return m.SetRules(self.generation, self.payloads.write(self.current.text.encode("utf-8")),
                          self.current.syntax, traceparent)

    def booted(self, slot: int) -> list[Action]:
        """A worker forked before the last rollout boots with older rules: send it the current."""
        self.ready.add(slot)
        if self.generation == 0:
            return []
        return [Send(slot, self._message())]

    def died(self, slot: int) -> list[Action]:
        self.ready.discard(slot)
        return []  # its restart boots with the current file and confirms it on Ready

    def applied(self, slot: int, generation: int) -> list[Action]:
        p = self.proposal
        if p is None or generation < p.generation:
            return []
        p.waiting.discard(slot)
        if p.waiting:
            return []
        self.proposal = None
        out: list[Action] = [Outcome(True, p.generation)]
        if p.requester is not None:
            out.append(Answer(p.requester, m.RulesDone(p.requester[1], p.generation, len(self.current.rule_sets),
                                                       self.pool_size)))
        return out

    def tick(self, now: float) -> list[Action]:
        p = self.proposal
        if p is None or now - p.started <= self.timeout:
            return []
        late = ", ".join(str(s) for s in sorted(p.waiting))
        self.proposal = None
        out: list[Action] = [Outcome(False, p.generation, f"worker(s) {late} did not confirm in time")]
        if p.requester is not None:
            out.append(Answer(p.requester, m.ReloadRefused(
                p.requester[1], ErrorKind.UNAVAILABLE,
                f"rules {p.generation} are rolled out but worker(s) {late} did not confirm them within "
                f"{self.timeout:g} s", "rules")))
        return out

    def shutdown(self) -> list[Action]:
        p = self.proposal
        if p is None:
            return []
        self.proposal = None
        return self._refuse(p.requester, ErrorKind.UNAVAILABLE, "the sidecar is shutting down", None)

    def _refuse(self, requester: Requester | None, kind: ErrorKind, message: str,
                field_name: str | None) -> list[Action]:
        out: list[Action] = [Outcome(False, self.generation, message, field_name)]
        if requester is not None:
            out.append(Answer(requester, m.ReloadRefused(requester[1], kind, message, field_name)))
        return out
