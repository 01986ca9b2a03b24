"""The reload transaction as a pure state machine: events in, actions out, no I/O.

The supervisor's loop feeds it what happened (a reload was asked for, a version was
verified, a worker booted, answered, died or timed out, time passed, shutdown began) and
carries out what it returns (send a message to a worker, answer a requester, verify a
version off the loop, kill a worker). Every interleaving is therefore testable without
processes (tests/test_coordinator.py). The two phases and their bookkeeping are the shared
core (transaction.py) the experiments rollout runs through as well.

The transaction, for a pool of N slots:

1. verify the version off the loop (requests queue behind it and behind a running one);
2. prepare: every slot must answer `Prepared`. A slot that is booting when the
   transaction starts, or boots during it, is sent `Prepare` once it is ready. A slot
   whose process exits is restarted by the pool and prepared again, once; a second exit,
   a worker killed for missing its heartbeat, a `PrepareFailed` or the timeout aborts:
   `Abort` goes to every worker (one still preparing drops the version when it finishes)
   and the requester gets FAILED_PRECONDITION (UNAVAILABLE for a timeout) naming the
   worker; the old version never stopped serving;
3. commit: from its first step the pool boots new workers with the new version. Every
   slot must confirm that it serves it: `Committed`, or booting with it. A slot that
   booted with the old version is sent `Switch`; one that refuses is killed, and so
   restarts with the new version; one that exits is waited for. At the timeout the slots
   still unconfirmed are killed and the requester gets UNAVAILABLE naming them.
4. only then the answer: `workers` is the number of slots serving the new version, which
   is N.
"""

from __future__ import annotations

import collections
import enum
from dataclasses import dataclass, field
from typing import assert_never

from reco_sidecar.artifact.version_choice import Chosen, NoVersion, Verdict
from reco_sidecar.common.errors import ErrorKind
from reco_sidecar.common.versions import LATEST, VersionSpec
from reco_sidecar.runtime import wire as m
from reco_sidecar.runtime.supervisor.transaction import Phase, Reply, Requester, Send, TwoPhase, refusal, to_each

DEFAULT_TIMEOUT = 600.0
# Txn id of a Switch sent outside any transaction (a worker that booted with an old version).
REPAIR = 0

# -- events --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReloadAsked:
    requester: Requester | None
    spec: VersionSpec
    # Whether its success pins the version (see Coordinator._done); None: when `spec` is a
    # number. A reload a model store asks for by number on its own is not an operator's choice.
    pin: bool | None = None
    # The requester's trace (W3C traceparent, "" when untraced), handed to every worker with
    # the transaction's messages so that each worker's prepare and commit join that trace.
    traceparent: str = ""


@dataclass(frozen=True)
class VersionVerified:
    ticket: int
    verdict: Verdict


@dataclass(frozen=True)
class WorkerBooted:
    slot: int
    version: int


class Death(enum.Enum):
    EXITED = "exited"
    # Killed by the pool for missing its heartbeat deadline: a hung worker, not a crash.
    TIMED_OUT = "timed out"


@dataclass(frozen=True)
class WorkerDied:
    slot: int
    cause: Death
    detail: str = ""


@dataclass(frozen=True)
class WorkerAnswered:
    slot: int
    answer: m.Prepared | m.PrepareFailed | m.Committed | m.CommitFailed


@dataclass(frozen=True)
class Undeliverable:
    """A message to `slot` could not be sent (the worker is alive): the reload fails now
    instead of at its timeout."""

    slot: int
    error: str


@dataclass(frozen=True)
class Tick:
    pass


@dataclass(frozen=True)
class ShutdownBegan:
    pass


Event = (ReloadAsked | VersionVerified | WorkerBooted | WorkerDied | WorkerAnswered | Undeliverable | Tick
         | ShutdownBegan)


# -- actions -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartVerify:
    ticket: int
    spec: VersionSpec
    known_bad: frozenset[int]


@dataclass(frozen=True)
class StopVerify:
    """The verification outlived the timeout (a hung filesystem): kill the helper."""


@dataclass(frozen=True)
class Kill:
    slot: int
    reason: str


@dataclass(frozen=True)
class Finished:
    """For the log and the metrics: one per reload asked for."""

    ok: bool
    version: int | None
    old_version: int
    seconds: float
    workers: int = 0
    kind: ErrorKind | None = None
    message: str = ""
    load_seconds: float = 0.0
    # Asked for the version every worker already serves: answered at once, not a reload.
    noop: bool = False
    # The version automatic reloads (--watch, a store's CURRENT) now leave alone, if any.
    pinned: int | None = None


@dataclass(frozen=True)
class Began:
    txn: int
    version: int
    old_version: int


@dataclass(frozen=True)
class VersionFailed:
    version: int
    reason: str


Action = Send | Reply | StartVerify | StopVerify | Kill | Finished | Began | VersionFailed


# -- state ---------------------------------------------------------------------------------------


@dataclass
class Txn:
    steps: TwoPhase
    version: int
    old_version: int
    asked_at: float
    pin: bool  # a success pins the version
    exits: collections.Counter[int] = field(default_factory=collections.Counter)
    load_seconds: float = 0.0
    traceparent: str = ""

    @property
    def id(self) -> int:
        return self.steps.id

    @property
    def requester(self) -> Requester | None:
        return self.steps.requester


@dataclass
class Verifying:
    ticket: int
    requester: Requester | None
    asked_at: float
    started: float
    pin: bool
    traceparent: str = ""


class Coordinator:
    """The reloads of one model. A sidecar serving several models runs one coordinator per
    model; every message it sends names its model, so their transactions never mix."""

    def __init__(self, pool_size: int, serving: int, *, timeout: float = DEFAULT_TIMEOUT, model: str = "",
                 failed: dict[int, str] | None = None) -> None:
        self.model = model
        self.pool_size = pool_size
        # The version a worker started now must boot with.
        self.serving = serving
        self.timeout = timeout
        self.ready: dict[int, int] = {}  # slot -> version it serves, for workers that are up
        # version -> why it is bad: `latest` skips these, and every worker lists them FAILED.
        self.failed: dict[int, str] = dict(failed or {})
        # Set by a successful reload to a number, cleared by one to `latest`: see _done.
        self.pinned: int | None = None
        self.queue: collections.deque[tuple[ReloadAsked, float]] = collections.deque()
        self.verifying: Verifying | None = None
        self.txn: Txn | None = None
        self.stopping = False
        self._ids = 0
        self._tickets = 0
        self.now = 0.0

    def failed_versions(self) -> tuple[tuple[int, str], ...]:
        return tuple(sorted(self.failed.items()))

    @property
    def busy(self) -> bool:
        return self.txn is not None or self.verifying is not None or bool(self.queue)

    def handle(self, event: Event, now: float) -> list[Action]:
        self.now = now
        out: list[Action] = []
        match event:
            case ReloadAsked():
                self._asked(event, out)
            case VersionVerified(ticket, verdict):
                self._verified(ticket, verdict, out)
            case WorkerBooted(slot, version):
                self._booted(slot, version, out)
            case WorkerDied(slot, cause, detail):
                self._died(slot, cause, detail, out)
            case WorkerAnswered(slot, answer):
                self._answered(slot, answer, out)
            case Undeliverable(slot, error):
                if self.txn is not None and self.txn.steps.phase is Phase.PREPARE and not self.stopping:
                    self._abort(self.txn, ErrorKind.UNAVAILABLE, f"worker {slot}: {error}", out)
            case Tick():
                self._tick(out)
            case ShutdownBegan():
                self._shutdown(out)
            case _:
                assert_never(event)
        return out

    # -- requests and verification -------------------------------------------------------------

    def _asked(self, event: ReloadAsked, out: list[Action]) -> None:
        if self.stopping:
            self._refuse(event.requester, self.now, ErrorKind.UNAVAILABLE, "the sidecar is shutting down", None,
                         None, out)
            return
        self.queue.append((event, self.now))
        self._next(out)

    def _next(self, out: list[Action]) -> None:
        if self.txn is not None or self.verifying is not None or not self.queue or self.stopping:
            return
        event, asked_at = self.queue.popleft()
        self._tickets += 1
        pin = event.spec is not LATEST if event.pin is None else event.pin
        self.verifying = Verifying(self._tickets, event.requester, asked_at, self.now, pin, event.traceparent)
        out.append(StartVerify(self._tickets, event.spec, frozenset(self.failed)))

    def _verified(self, ticket: int, verdict: Verdict, out: list[Action]) -> None:
        job = self.verifying
        if job is None or job.ticket != ticket:
            return  # answered already (shutdown)
        self.verifying = None
        for version, reason in verdict.bad:
            if version != self.serving:
                self.failed[version] = reason
                out.append(VersionFailed(version, reason))
        match verdict:
            case NoVersion(kind, message, field_name):
                self._refuse(job.requester, job.asked_at, kind, message, field_name, None, out)
            case Chosen(version):
                self.failed.pop(version, None)
                self._begin(job, version, out)
            case _:
                assert_never(verdict)
        self._next(out)

    # -- the transaction -----------------------------------------------------------------------

    def _begin(self, job: Verifying, version: int, out: list[Action]) -> None:
        if version == self.serving and self._all_serve(version):
            self._done(job.requester, job.asked_at, version, version, 0.0, job.pin, out,
                       noop=True)
            return
        self._ids += 1
        # One deadline (--reload-timeout) for the whole reload, from the start of its verification.
        txn = Txn(TwoPhase.begin(self._ids, self.pool_size, job.requester, job.started), version, self.serving,
                  job.asked_at, job.pin, traceparent=job.traceparent)
        self.txn = txn
        out.append(Began(txn.id, version, txn.old_version))
        for slot in sorted(self.ready):
            self._send_prepare(txn, slot, out)

    def _send_prepare(self, txn: Txn, slot: int, out: list[Action]) -> None:
        out.append(Send(slot, m.Prepare(txn.id, txn.version, self.model, traceparent=txn.traceparent)))

    def _booted(self, slot: int, version: int, out: list[Action]) -> None:
        self.ready[slot] = version
        txn = self.txn
        if self.stopping:
            return
        if txn is None:
            if version != self.serving:
                out.append(Send(slot, m.Switch(REPAIR, self.serving, self.model)))
            return
        if txn.steps.phase is Phase.PREPARE:
            if slot in txn.steps.waiting:
                self._send_prepare(txn, slot, out)
            return
        if version == txn.version:
            self._confirm(txn, slot, out)
        else:
            # It was started before the commit began and booted the old version.
            out.append(Send(slot, m.Switch(txn.id, txn.version, self.model, traceparent=txn.traceparent)))

    def _died(self, slot: int, cause: Death, detail: str, out: list[Action]) -> None:
        self.ready.pop(slot, None)
        txn = self.txn
        if txn is None or self.stopping:
            return
        what = f"worker {slot} {cause.value}" + (f" ({detail})" if detail else "")
        if txn.steps.phase is Phase.PREPARE:
            txn.exits[slot] += 1
            if cause is Death.TIMED_OUT or txn.exits[slot] > 1:
                # A worker that stopped answering says nothing about the version: it is not
                # marked FAILED, so the watch tries it again once the pool has replaced the
                # worker. One that died twice loading it does indict it.
                self._abort(txn, ErrorKind.FAILED_PRECONDITION, f"{what} during the reload", out,
                            condemn=cause is not Death.TIMED_OUT)
                return
        # Prepare: it restarts with the serving version and is prepared again once ready.
        # Commit: it restarts with the new version; wait for it to say so.
        txn.steps.lost(slot)

    def _answered(self, slot: int, answer: m.Prepared | m.PrepareFailed | m.Committed | m.CommitFailed,
                  out: list[Action]) -> None:
        txn = self.txn
        if self.stopping:
            return
        match answer:
            case m.Committed(txn_id, version, _):
                self.ready[slot] = version
                if txn is not None and txn_id == txn.id and txn.steps.phase is Phase.COMMIT:
                    self._confirm(txn, slot, out)
            case m.CommitFailed(txn_id, version, error, _):
                if txn_id == REPAIR or (txn is not None and txn_id == txn.id):
                    # A worker that cannot serve the version the pool serves is replaced; its
                    # restart boots that version.
                    out.append(Kill(slot, f"could not switch to version {version}: {error}"))
            case m.Prepared(txn_id, _, load_seconds, _):
                if txn is None or txn_id != txn.id or txn.steps.phase is not Phase.PREPARE \
                        or slot not in txn.steps.waiting:
                    return
                txn.load_seconds = max(txn.load_seconds, load_seconds)
                if txn.steps.confirm(slot):
                    self._commit(txn, out)
            case m.PrepareFailed(txn_id, _, error, _):
                if txn is None or txn_id != txn.id or txn.steps.phase is not Phase.PREPARE:
                    return
                self._abort(txn, ErrorKind.FAILED_PRECONDITION, f"worker {slot}: {error}", out)
            case _:
                assert_never(answer)

    def _commit(self, txn: Txn, out: list[Action]) -> None:
        txn.steps.commit(self.pool_size)
        # From here on, a worker started by the pool boots the new version.
        self.serving = txn.version
        out += to_each(self.ready, m.Commit(txn.id, txn.version, self.model, traceparent=txn.traceparent))

    def _confirm(self, txn: Txn, slot: int, out: list[Action]) -> None:
        if not txn.steps.confirm(slot):
            return
        self.txn = None
        self._done(txn.requester, txn.asked_at, txn.old_version, txn.version, txn.load_seconds, txn.pin, out)
        self._next(out)

    def _abort(self, txn: Txn, kind: ErrorKind, why: str, out: list[Action], *, condemn: bool | None = None) -> None:
        """`condemn`: mark the version FAILED (by default unless the failure is a timeout)."""
        self.txn = None
        out += to_each(self.ready, m.Abort(txn.id, txn.version, self.model))
        if condemn if condemn is not None else kind is not ErrorKind.UNAVAILABLE:
            self.failed[txn.version] = why
            out.append(VersionFailed(txn.version, why))
        self._refuse(txn.requester, txn.asked_at, kind,
                     f"version {txn.version} was not loaded by every worker; still serving {txn.old_version}: {why}",
                     "version", txn.version, out)
        self._next(out)

    def _tick(self, out: list[Action]) -> None:
        job = self.verifying
        if job is not None and not self.stopping and self.now - job.started > self.timeout:
            self.verifying = None
            out.append(StopVerify())
            self._refuse(job.requester, job.asked_at, ErrorKind.UNAVAILABLE,
                         f"verifying the version took longer than {self.timeout:g} s", "version", None, out)
            self._next(out)
        txn = self.txn
        if txn is None or self.stopping or not txn.steps.expired(self.now, self.timeout):
            return
        late = txn.steps.late()
        if txn.steps.phase is Phase.PREPARE:
            self._abort(txn, ErrorKind.UNAVAILABLE, f"worker(s) {late} did not answer within {self.timeout:g} s",
                        out)
            return
        # The new version is what the pool serves now: replace the workers that never confirmed it.
        for slot in sorted(txn.steps.waiting & set(self.ready)):
            out.append(Kill(slot, f"did not confirm version {txn.version} within {self.timeout:g} s"))
        self.txn = None
        self._refuse(txn.requester, txn.asked_at, ErrorKind.UNAVAILABLE,
                     f"version {txn.version} is committed but worker(s) {late} did not confirm it within "
                     f"{self.timeout:g} s; they are being replaced", None, txn.version, out)
        self._next(out)

    def _shutdown(self, out: list[Action]) -> None:
        if self.stopping:
            return
        self.stopping = True
        pending: list[tuple[Requester | None, float, int | None]] = []
        if self.txn is not None:
            pending.append((self.txn.requester, self.txn.asked_at, self.txn.version))
            self.txn = None
        if self.verifying is not None:
            pending.append((self.verifying.requester, self.verifying.asked_at, None))
            self.verifying = None
        pending += [(event.requester, asked_at, None) for event, asked_at in self.queue]
        self.queue.clear()
        for requester, asked_at, version in pending:
            self._refuse(requester, asked_at, ErrorKind.UNAVAILABLE, "the sidecar is shutting down", None, version,
                         out)

    # -- answers -------------------------------------------------------------------------------

    def _all_serve(self, version: int) -> bool:
        return len(self.ready) == self.pool_size and all(v == version for v in self.ready.values())

    def _done(self, requester: Requester | None, asked_at: float, old: int, new: int, load_seconds: float,
              pin: bool, out: list[Action], *, noop: bool = False) -> None:
        # An operator who names a number (a rollback) decides what serves: automatic reloads
        # leave it alone until a reload of `latest` (docs/operations.md, "Pinning").
        self.pinned = new if pin else None
        workers = sum(1 for v in self.ready.values() if v == new)
        out.append(Finished(True, new, old, self.now - asked_at, workers=workers, load_seconds=load_seconds,
                            noop=noop, pinned=self.pinned))
        if requester is not None:
            out.append(Reply(requester, m.ReloadDone(requester[1], old, new, load_seconds, workers)))

    def _refuse(self, requester: Requester | None, asked_at: float, kind: ErrorKind, message: str,
                field_name: str | None, version: int | None, out: list[Action]) -> None:
        out.append(Finished(False, version, self.serving, self.now - asked_at, kind=kind, message=message))
        out += refusal(requester, kind, message, field_name)
