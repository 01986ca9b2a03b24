"""Rolling out an experiments file to every worker, all or nothing, as a small state machine
(no I/O: the supervisor sends what it returns).

1. The supervisor reads and validates the file (syntax, fields, every arm's model served,
   every pinned version complete) before any worker sees it; a bad file is refused naming
   the field and nothing changes.
2. prepare: every slot parses it and opens the versions its arms pin, beside what serves. A
   slot that boots meanwhile is sent the file once ready; one whose worker dies is prepared
   again when it is back. A slot that cannot open a pinned version, or the timeout, aborts
   everywhere: the requester is refused naming the arm's field, the old file keeps serving.
3. commit: from here on a worker started by the pool boots with the new file; every slot
   swaps; the requester is answered when every slot serves it.
"""

from __future__ import annotations

import enum
import pathlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from reco_sidecar.common.errors import ErrorKind, RecoError
from reco_sidecar.experiments import checks
from reco_sidecar.runtime import wire as m

# One "send this to that slot" action for both state machines: the loop executes them alike.
from reco_sidecar.runtime.supervisor.model_reload import Send as Send

Requester = tuple[int, int]


class Phase(enum.Enum):
    PREPARE = "prepare"
    COMMIT = "commit"


@dataclass
class Proposal:
    generation: int
    file: checks.ExperimentsFile
    requester: Requester | None
    started: float
    waiting: set[int]
    phase: Phase = Phase.PREPARE


@dataclass(frozen=True)
class Answer:
    requester: Requester
    message: m.ExperimentsDone | m.ReloadRefused


@dataclass(frozen=True)
class Outcome:
    """For the log and the metrics: a rollout finished (ok) or was refused."""

    ok: bool
    generation: int
    message: str = ""
    field: str | None = None


Action = Send | Answer | Outcome


@dataclass
class Rollout:
    path: pathlib.Path | None
    pool_size: int
    timeout: float
    current: checks.ExperimentsFile = field(default_factory=checks.ExperimentsFile.empty)
    generation: int = 0  # of `current`; each proposal takes the next number, used or not
    proposals: int = 0
    ready: dict[int, int] = field(default_factory=dict)  # slot -> generation it serves, workers up
    proposal: Proposal | None = None
    # The text of the last file refused ("" for none; None: it could not be read), so that
    # --watch reports a bad file once instead of at every poll.
    refused: str | None = ""

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

    # -- events ----------------------------------------------------------------------------------

    def asked(self, requester: Requester | None, models: Collection[str],
              versions_of: Callable[[str], Collection[int]], now: float) -> list[Action]:
        if self.path is None:
            return self._refuse(requester, ErrorKind.FAILED_PRECONDITION,
                                "this sidecar was started without --experiments", "experiments")
        if self.proposal is not None:
            return self._refuse(requester, ErrorKind.UNAVAILABLE,
                                f"experiments rollout {self.proposal.generation} is in progress; try again",
                                "experiments")
        try:
            loaded = checks.read_checked(self.path, models, versions_of)
        except RecoError as e:
            try:
                self.refused = self.path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                self.refused = None
            return self._refuse(requester, ErrorKind.FAILED_PRECONDITION,
                                f"{e.message}; still serving the previous experiments", e.field)
        self.refused = ""
        self.proposals = max(self.proposals, self.generation) + 1
        proposal = Proposal(self.proposals, loaded, requester, now, set(range(self.pool_size)))
        self.proposal = proposal
        message = m.PrepareExperiments(proposal.generation, loaded.text, loaded.syntax)
        return [Send(slot, message) for slot in sorted(self.ready)]

    def booted(self, slot: int, generation: int) -> list[Action]:
        self.ready[slot] = generation
        out: list[Action] = []
        p = self.proposal
        if p is not None and p.phase is Phase.PREPARE and slot in p.waiting:
            out.append(Send(slot, m.PrepareExperiments(p.generation, p.file.text, p.file.syntax)))
        if generation < self.generation:
            # Forked before the last commit reached it: bring it to the file the pool serves.
            out.append(Send(slot, m.SetExperiments(self.generation, self.current.text, self.current.syntax)))
        return out + self._maybe_done()

    def died(self, slot: int) -> list[Action]:
        self.ready.pop(slot, None)
        if self.proposal is not None:
            # Prepare: it restarts with the old file and is prepared again. Commit: it restarts
            # with the new one.
            self.proposal.waiting.add(slot)
        return []

    def prepared(self, slot: int, generation: int) -> list[Action]:
        p = self.proposal
        if p is None or p.generation != generation or p.phase is not Phase.PREPARE:
            return []
        p.waiting.discard(slot)
        if p.waiting:
            return []
        p.phase = Phase.COMMIT
        self.current, self.generation = p.file, p.generation
        p.waiting = set(range(self.pool_size))
        out: list[Action] = [Send(s, m.CommitExperiments(p.generation)) for s in sorted(self.ready)]
        return out + self._maybe_done()

    def prepare_failed(self, slot: int, generation: int, error: str, field_name: str) -> list[Action]:
        p = self.proposal
        if p is None or p.generation != generation or p.phase is not Phase.PREPARE:
            return []
        return self._abort(ErrorKind.FAILED_PRECONDITION, f"worker {slot}: {error}", field_name or None)

    def applied(self, slot: int, generation: int) -> list[Action]:
        self.ready[slot] = generation
        return self._maybe_done()

    def tick(self, now: float) -> list[Action]:
        p = self.proposal
        if p is None or now - p.started <= self.timeout:
            return []
        late = ", ".join(str(s) for s in sorted(p.waiting))
        if p.phase is Phase.PREPARE:
            return self._abort(ErrorKind.UNAVAILABLE,
                               f"worker(s) {late} did not prepare the experiments within {self.timeout:g} s",
                               "experiments")
        # Committed: the late workers serve it once they answer; the requester hears now.
        self.proposal = None
        out: list[Action] = [Outcome(False, p.generation, f"worker(s) {late} did not confirm in time")]
        if p.requester is not None:
            out.append(Answer(p.requester, m.ReloadRefused(
                p.requester[1], ErrorKind.UNAVAILABLE,
                f"experiments {p.generation} are committed but worker(s) {late} did not confirm them within "
                f"{self.timeout:g} s", "experiments")))
        return out

    def shutdown(self) -> list[Action]:
        p = self.proposal
        if p is None:
            return []
        self.proposal = None
        return self._refuse(p.requester, ErrorKind.UNAVAILABLE, "the sidecar is shutting down", None)

    # -- answers ---------------------------------------------------------------------------------

    def _maybe_done(self) -> list[Action]:
        p = self.proposal
        if p is None or p.phase is not Phase.COMMIT:
            return []
        serving = {s for s, g in self.ready.items() if g >= p.generation}
        p.waiting -= serving
        if p.waiting:
            return []
        self.proposal = None
        out: list[Action] = [Outcome(True, p.generation)]
        if p.requester is not None:
            out.append(Answer(p.requester, m.ExperimentsDone(p.requester[1], p.generation,
                                                             len(p.file.experiments.experiments), len(serving))))
        return out

    def _abort(self, kind: ErrorKind, why: str, field_name: str | None) -> list[Action]:
        p = self.proposal
        assert p is not None
        self.proposal = None
        out: list[Action] = [Send(s, m.AbortExperiments(p.generation)) for s in sorted(self.ready)]
        return out + self._refuse(p.requester, kind, f"{why}; still serving the previous experiments", field_name)

    def _refuse(self, requester: Requester | None, kind: ErrorKind, message: str,
                field_name: str | None) -> list[Action]:
        out: list[Action] = [Outcome(False, self.generation, message, field_name)]
        if requester is not None:
            out.append(Answer(requester, m.ReloadRefused(requester[1], kind, message, field_name)))
        return out
