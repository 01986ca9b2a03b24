"""Rolling out a file to every worker, all or nothing, as a pure state machine on the shared
two-phase core (transaction.py): events in, actions out, no I/O. The kind of file (the
experiments file, experiments_rollout.py; the ranking rules, rules_rollout.py) supplies its
messages (`Kind`); the supervisor reads and checks the file and hands over a `Candidate`
(or the error that refused it).

1. A file that failed its checks (syntax, fields, every arm's model served, every pinned
   version complete) is refused naming the field before any worker sees it.
2. prepare: every slot parses it and opens what it needs beside what serves. A slot that
   boots meanwhile is sent the file once ready; one whose worker dies is prepared again
   when it is back. A slot that cannot prepare, a message that cannot reach a slot, or the
   timeout aborts everywhere: the requester is refused naming the field, the old file keeps
   serving.
3. commit: from here on a worker started by the pool boots with the new file; every slot
   swaps; the requester is answered when every slot serves it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from reco_sidecar.common.errors import ErrorKind, RecoError
from reco_sidecar.runtime import wire
from reco_sidecar.runtime.supervisor.transaction import Phase, Reply, Requester, Send, TwoPhase, refusal, to_each

F = TypeVar("F")


@dataclass(frozen=True)
class Candidate(Generic[F]):
    """A file the supervisor read and checked: what it says, and where workers read it."""

    content: F
    payload: wire.Payload


class Kind(Protocol[F]):
    """The messages of one kind of file rollout. `name` is the field a refusal names."""

    @property
    def name(self) -> str: ...

    # `traceparent`: the requester's trace ("" when untraced), so that each worker's part in
    # the rollout is a span of it.
    def prepare(self, generation: int, file: Candidate[F], traceparent: str) -> wire.ToWorker: ...

    def commit(self, generation: int, traceparent: str) -> wire.ToWorker: ...

    def abort(self, generation: int) -> wire.ToWorker: ...

    def replace(self, generation: int, file: Candidate[F], traceparent: str) -> wire.ToWorker:
        """Prepare and commit in one step, for a worker that booted with an older file."""
        ...

    def done(self, request_id: int, generation: int, file: Candidate[F], workers: int
             ) -> wire.ExperimentsDone | wire.RulesDone: ...


@dataclass(frozen=True)
class Outcome:
    """For the log and the metrics: a rollout finished (ok) or was refused."""

    ok: bool
    generation: int
    message: str = ""
    field: str | None = None
    # The workers refused the file itself (not a timeout, not a worker's fault): the watch
    # leaves it alone until it changes.
    file_refused: bool = False


Action = Send | Reply | Outcome


@dataclass
class Proposal(Generic[F]):
    steps: TwoPhase
    file: Candidate[F]
    traceparent: str = ""  # the requester's trace: every message of this rollout carries it

    @property
    def generation(self) -> int:
        return self.steps.id


@dataclass
class Rollout(Generic[F]):
    kind: Kind[F]
    pool_size: int
    timeout: float
    # What the pool serves; None: the file it booted with, before any rollout.
    current: Candidate[F] | None = None
    generation: int = 0  # of `current`; each proposal takes the next number, used or not
    proposals: int = 0
    ready: dict[int, int] = field(default_factory=dict)  # slot -> generation it serves, workers up
    proposal: Proposal[F] | None = None

    @property
    def busy(self) -> bool:
        return self.proposal is not None

    # -- events ----------------------------------------------------------------------------------

    def asked(self, requester: Requester | None, checked: Candidate[F] | RecoError, now: float,
              traceparent: str = "") -> list[Action]:
        """A request to roll out the file as the supervisor found it (read and checked)."""
        if self.proposal is not None:
            return self._refuse(requester, ErrorKind.UNAVAILABLE,
                                f"{self.kind.name} rollout {self.proposal.generation} is in progress; try again",
                                self.kind.name)
        if isinstance(checked, RecoError):
            return self._refuse(requester, ErrorKind.FAILED_PRECONDITION,
                                f"{checked.message}; still serving the previous {self.kind.name}", checked.field)
        self.proposals = max(self.proposals, self.generation) + 1
        proposal = Proposal(TwoPhase.begin(self.proposals, self.pool_size, requester, now), checked, traceparent)
        self.proposal = proposal
        return list(to_each(self.ready, self.kind.prepare(proposal.generation, checked, traceparent)))

    def booted(self, slot: int, generation: int) -> list[Action]:
        self.ready[slot] = generation
        out: list[Action] = []
        p = self.proposal
        if p is not None and p.steps.phase is Phase.PREPARE and slot in p.steps.waiting:
            out.append(Send(slot, self.kind.prepare(p.generation, p.file, p.traceparent)))
        if generation < self.generation and self.current is not None:
            # Forked before the last commit reached it: bring it to the file the pool serves.
            # Part of the rollout in progress when that one is committed: in its trace.
            traceparent = p.traceparent if p is not None and p.generation == self.generation else ""
            out.append(Send(slot, self.kind.replace(self.generation, self.current, traceparent)))
        return out + self._maybe_done()

    def died(self, slot: int) -> list[Action]:
        self.ready.pop(slot, None)
        if self.proposal is not None:
            # Prepare: it restarts with the old file and is prepared again. Commit: it restarts
            # with the new one.
            self.proposal.steps.lost(slot)
        return []

    def prepared(self, slot: int, generation: int) -> list[Action]:
        p = self.proposal
        if p is None or p.generation != generation or p.steps.phase is not Phase.PREPARE:
            return []
        if not p.steps.confirm(slot):
            return []
        p.steps.commit(self.pool_size)
        self.current, self.generation = p.file, p.generation
        out: list[Action] = list(to_each(self.ready, self.kind.commit(p.generation, p.traceparent)))
        return out + self._maybe_done()

    def prepare_failed(self, slot: int, generation: int, error: str, field_name: str) -> list[Action]:
        p = self.proposal
        if p is None or p.generation != generation or p.steps.phase is not Phase.PREPARE:
            return []
        return self._abort(ErrorKind.FAILED_PRECONDITION, f"worker {slot}: {error}", field_name or None,
                           file_refused=True)

    def undeliverable(self, slot: int, error: str) -> list[Action]:
        """A message to a live worker could not be sent: waiting for its answer is pointless."""
        p = self.proposal
        if p is None or p.steps.phase is not Phase.PREPARE:
            return []
        return self._abort(ErrorKind.FAILED_PRECONDITION, f"worker {slot}: {error}", self.kind.name)

    def applied(self, slot: int, generation: int) -> list[Action]:
        self.ready[slot] = generation
        return self._maybe_done()

    def tick(self, now: float) -> list[Action]:
        p = self.proposal
        if p is None or not p.steps.expired(now, self.timeout):
            return []
        late = p.steps.late()
        if p.steps.phase is Phase.PREPARE:
            return self._abort(ErrorKind.UNAVAILABLE,
                               f"worker(s) {late} did not prepare the {self.kind.name} within {self.timeout:g} s",
                               self.kind.name)
        # Committed: the late workers serve it once they answer; the requester hears now.
        self.proposal = None
        out: list[Action] = [Outcome(False, p.generation, f"worker(s) {late} did not confirm in time")]
        out += refusal(p.steps.requester, ErrorKind.UNAVAILABLE,
                       f"{self.kind.name} {p.generation} are committed but worker(s) {late} did not confirm them "
                       f"within {self.timeout:g} s", self.kind.name)
        return out

    def shutdown(self) -> list[Action]:
        p = self.proposal
        if p is None:
            return []
        self.proposal = None
        return self._refuse(p.steps.requester, ErrorKind.UNAVAILABLE, "the sidecar is shutting down", None)

    # -- answers ---------------------------------------------------------------------------------

    def _maybe_done(self) -> list[Action]:
        p = self.proposal
        if p is None or p.steps.phase is not Phase.COMMIT:
            return []
        serving = {s for s, g in self.ready.items() if g >= p.generation}
        for slot in serving:
            p.steps.confirm(slot)
        if p.steps.waiting:
            return []
        self.proposal = None
        out: list[Action] = [Outcome(True, p.generation)]
        requester = p.steps.requester
        if requester is not None:
            out.append(Reply(requester, self.kind.done(requester[1], p.generation, p.file, len(serving))))
        return out

    def _abort(self, kind: ErrorKind, why: str, field_name: str | None, *, file_refused: bool = False
               ) -> list[Action]:
        p = self.proposal
        assert p is not None
        self.proposal = None
        out: list[Action] = list(to_each(self.ready, self.kind.abort(p.generation)))
        return out + self._refuse(p.steps.requester, kind, f"{why}; still serving the previous {self.kind.name}",
                                  field_name, file_refused=file_refused)

    def _refuse(self, requester: Requester | None, kind: ErrorKind, message: str,
                field_name: str | None, *, file_refused: bool = False) -> list[Action]:
        out: list[Action] = [Outcome(False, self.generation, message, field_name, file_refused)]
        return out + refusal(requester, kind, message, field_name)
