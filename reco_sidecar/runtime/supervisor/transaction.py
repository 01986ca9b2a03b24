"""The two-phase transaction both kinds of change run through, model reloads
(model_reload.py) and file rollouts (rollout.py): every slot of the pool must confirm
`prepare`, then every slot must confirm `commit`; slots that are not up when a phase
starts are reached when they boot. Pure: no I/O, no clock of its own."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from reco_sidecar.common.errors import ErrorKind
from reco_sidecar.runtime import wire

Requester = tuple[int, int]  # (slot, request id) of a client's request; None for SIGHUP and the watch


class Phase(enum.Enum):
    PREPARE = "prepare"
    COMMIT = "commit"


@dataclass(frozen=True)
class Send:
    """Send `message` to the worker in `slot`."""

    slot: int
    message: wire.ToWorker


@dataclass(frozen=True)
class Reply:
    """Answer a client's request, through the worker that forwarded it."""

    requester: Requester
    message: wire.ReloadDone | wire.ReloadRefused | wire.ExperimentsDone | wire.RulesDone


@dataclass
class TwoPhase:
    """Which slots have not yet confirmed the current phase."""

    id: int
    requester: Requester | None
    started: float
    waiting: set[int]
    phase: Phase = Phase.PREPARE

    @classmethod
    def begin(cls, txn_id: int, pool_size: int, requester: Requester | None, now: float) -> TwoPhase:
        return cls(txn_id, requester, now, set(range(pool_size)))

    def confirm(self, slot: int) -> bool:
        """True once every slot has confirmed this phase."""
        self.waiting.discard(slot)
        return not self.waiting

    def lost(self, slot: int) -> None:
        """A slot's worker died: its restart must confirm this phase again."""
        self.waiting.add(slot)

    def commit(self, pool_size: int) -> None:
        self.phase, self.waiting = Phase.COMMIT, set(range(pool_size))

    def expired(self, now: float, timeout: float) -> bool:
        return now - self.started > timeout

    def late(self) -> str:
        return ", ".join(str(s) for s in sorted(self.waiting))


def to_each(slots: dict[int, int], message: wire.ToWorker) -> list[Send]:
    """`message` to every slot that is up, in slot order."""
    return [Send(slot, message) for slot in sorted(slots)]


def refusal(requester: Requester | None, kind: ErrorKind, message: str, field_name: str | None) -> list[Reply]:
    """The answer to a refused request; none for a change nobody asked for (SIGHUP, the watch)."""
    if requester is None:
        return []
    return [Reply(requester, wire.ReloadRefused(requester[1], kind, message, field_name))]

