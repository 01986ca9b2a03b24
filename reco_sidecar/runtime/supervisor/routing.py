"""Where the supervisor's events go: each model's reload transaction (model_reload.py), the
experiments rollout (rollout.py), the store follower; and carrying out what they return
(send to a worker, answer a client, start a verification, kill a worker). The loop
(loop.py) owns the processes and the clock and calls in here."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import assert_never

from reco_sidecar.artifact import checksums, version_dirs
from reco_sidecar.common import logs
from reco_sidecar.common.errors import ErrorKind
from reco_sidecar.common.versions import LATEST, VersionSpec
from reco_sidecar.experiments.checks import ExperimentsFile
from reco_sidecar.ranking.rules import RulesFile
from reco_sidecar.runtime import wire as m
from reco_sidecar.runtime.channel import Undeliverable
from reco_sidecar.runtime.learner.supervised import LearnerHandle
from reco_sidecar.runtime.payload import PayloadDir
from reco_sidecar.runtime.supervisor import model_reload as co
from reco_sidecar.runtime.supervisor import rollout as ro
from reco_sidecar.runtime.supervisor.experiments_rollout import ExperimentsReader, experiments_rollout
from reco_sidecar.runtime.supervisor.pool import Pool, WorkerSlot
from reco_sidecar.runtime.supervisor.rules_rollout import RulesReader, rules_rollout
from reco_sidecar.runtime.supervisor.store_bridge import Handlers, StoreBridge
from reco_sidecar.runtime.supervisor.transaction import Reply, Requester, Send
from reco_sidecar.runtime.supervisor.verifier import Verifier
from reco_sidecar.runtime.supervisor.watch import ReloadWanted, Watch
from reco_sidecar.serving import metrics
from reco_sidecar.settings import ServeSettings
from reco_sidecar.store.status import StoreStatus

log = logs.get(__name__)


class Router:
    pool: Pool  # set by the loop once the ports are probed, before any fork
    # Online learning's learner (runtime/learner/supervised.py), told of the default model's
    # reloads; set by the loop with --online-dir.
    learner: LearnerHandle | None = None

    def __init__(self, settings: ServeSettings, versions: dict[str, int], store: StoreBridge | None,
                 experiments: ExperimentsFile | None, failed: dict[str, dict[int, str]] | None,
                 fds_for_children: Callable[[], list[int]], rules: RulesFile | None = None) -> None:
        self.settings = settings
        self.store = store  # with a model store, its follower watches and downloads off the loop
        self.reloads = {name: co.Coordinator(settings.workers, version, model=name, timeout=settings.reload_timeout,
                                             failed=(failed or {}).get(name)) for name, version in versions.items()}
        self.verifiers = {name: Verifier(settings.model_root / name) for name in versions}
        self.payloads = PayloadDir()
        self.experiments = ExperimentsReader(settings.experiments, self.payloads)
        self.booted_with = experiments or ExperimentsFile.empty()
        self.rollout = experiments_rollout(settings.workers, settings.reload_timeout)
        # The ranking rules: validated whole here, then staged by every worker and swapped in by
        # all once all staged, on the same two-phase rollout as experiments (docs/ranking.md).
        self.rules_file = RulesReader(settings.rules, self.payloads)
        self.rules_booted_with = rules or RulesFile.empty()
        self.rules = rules_rollout(settings.workers, settings.reload_timeout)
        self.watch = Watch(settings.model_root, settings.watch, folders=store is None)
        self._fds_for_children = fds_for_children
        # What a Reload sent to the follower asked for, and its trace.
        self._store_specs: dict[Requester, tuple[VersionSpec, str]] = {}
        self.store_handlers = Handlers(self.store_available, self.store_refused, self.store_status)

    def start(self, now: float) -> None:
        """Forks the first workers (the loop has probed the ports and made the pool)."""
        self.watch.start(now)
        for slot in self.pool.slots:
            self.spawn(slot, now)
        if self.store is not None:
            self.store.serving(self.serving()[self.settings.default_model])

    def serving(self) -> dict[str, int]:
        """The version of every model a worker started now boots."""
        return {name: reload.serving for name, reload in self.reloads.items()}

    def experiments_served(self) -> ExperimentsFile:
        return self.rollout.current.content if self.rollout.current is not None else self.booted_with

    def rules_served(self) -> RulesFile:
        return self.rules.current.content if self.rules.current is not None else self.rules_booted_with

    def _payloads_in_use(self) -> list[m.Payload | None]:
        """What the pool serves and what is being rolled out, of both kinds of file: they share
        one payload directory, so neither rollout may prune the other's files."""
        return [r.current.payload if r.current else None for r in (self.rollout, self.rules)] + [
            r.proposal.file.payload if r.proposal else None for r in (self.rollout, self.rules)]

    def spawn(self, slot: WorkerSlot, now: float) -> None:
        failed = {name: reload.failed_versions() for name, reload in self.reloads.items()}
        self.pool.spawn(slot, self.serving(), now, self.experiments_served(), self.rollout.generation, failed,
                        rules=self.rules_served(), rules_generation=self.rules.generation)

    @property
    def busy(self) -> bool:
        return self.rollout.busy or self.rules.busy or any(reload.busy for reload in self.reloads.values())

    def event(self, event: co.Event, model: str | None = None) -> None:
        """To the reload of `model` (the default model when empty); None: to every one."""
        for name in list(self.reloads) if model is None else [model or self.settings.default_model]:
            if name in self.reloads:
                for action in self.reloads[name].handle(event, time.monotonic()):
                    self.do(action, name)

    def do(self, action: co.Action, model: str) -> None:
        match action:
            case Send(slot, message):
                self.send(self.pool.slots[slot], self._with_digests(message, model), model=model)
            case Reply(requester, message):
                self.send(self.pool.slots[requester[0]], message)
            case co.StartVerify(ticket, spec, known_bad):
                verifier = self.verifiers[model]
                if not verifier.running:
                    verifier.start(self._fds_for_children())
                if not verifier.submit(ticket, spec, known_bad):
                    self.verifier_died(model)
            case co.StopVerify():
                log.error("verification_timeout", model=model)
                self.verifiers[model].died()
            case co.Kill(slot, reason):
                log.error("worker_replaced", slot=slot, reason=reason)
                self.pool.kill(self.pool.slots[slot], reason)
            case co.VersionFailed(version, reason):
                log.error("version_failed", model=model, version=version, error=reason)
                metrics.version_failed()
                for each in self.pool.slots:  # a booting worker reads it once it is up
                    self.send(each, m.MarkFailed(version, reason, model))
            case co.Finished():
                self.finished(action, model)
            case co.Began(txn, version, old_version):
                log.info("reload_start", model=model, txn=txn, version=version, old_version=old_version)
                if self.learner is not None and model == self.settings.default_model:
                    self.learner.preparing(version)  # solved beside the serving one while workers load
            case _:
                assert_never(action)

    def finished(self, f: co.Finished, model: str) -> None:
        if self.learner is not None and model == self.settings.default_model:
            self.learner.serving(self.reloads[model].serving)  # either way: the other table goes
        if self.store is not None and model == self.settings.default_model:
            # Either way: after a failed reload it tells the follower the replica is still on
            # the old version, so the store's target is offered again at its next look (a
            # worker's fault aborts a reload without condemning the version; one that is
            # condemned is ignored by Watch.offered).
            self.store.serving(self.reloads[model].serving)
        if f.ok:
            if not f.noop:
                metrics.reload_finished("ok", f.seconds)
            log.info("reload_done", model=model, version=f.version, old_version=f.old_version, workers=f.workers,
                     **({"noop": True} if f.noop else {"load_seconds": round(f.load_seconds, 4),
                                                       "seconds": round(f.seconds, 4)}), pinned=f.pinned)
        else:
            kind = f.kind or ErrorKind.FAILED_PRECONDITION
            metrics.reload_finished(kind.name)
            log.warning("reload_failed", model=model, code=kind.name, version=f.version, error=f.message)

    def rolled(self, actions: list[ro.Action]) -> None:
        for action in actions:
            match action:
                case Send(slot, message):
                    if isinstance(message, m.PrepareExperiments) and slot == min(self.rollout.ready, default=-1):
                        log.info("experiments_rollout", generation=message.generation)
                    self.send(self.pool.slots[slot], message, rollout=True)
                case Reply(requester, message):
                    self.send(self.pool.slots[requester[0]], message)
                case ro.Outcome(ok, generation, message, field_name, file_refused):
                    if file_refused:
                        self.experiments.workers_refused()
                    if ok:
                        self.payloads.keep_only(self._payloads_in_use())
                        log.info("experiments_done", generation=generation,
                                 experiments=[e.name for e in self.experiments_served().experiments.experiments])
                    else:
                        log.warning("experiments_refused", generation=generation, error=message, field=field_name)
                    metrics.experiments_reloaded("ok" if ok else "refused")
                case _:
                    assert_never(action)

    def send(self, slot: WorkerSlot, message: m.ToWorker, *, model: str | None = None, rollout: bool = False,
             rules: bool = False) -> bool:
        """False when the worker is gone. A message that cannot reach a live worker fails the
        transaction that sent it at once (not at its timeout)."""
        try:
            return slot.channel is not None and slot.channel.send(message)
        except Undeliverable as e:
            log.error("control_send_failed", slot=slot.slot, error=str(e))
            if model is not None:
                self.event(co.Undeliverable(slot.slot, str(e)), model)
            if rollout:
                self.rolled(self.rollout.undeliverable(slot.slot, str(e)))
            if rules:
                self.rules_rolled(self.rules.undeliverable(slot.slot, str(e)))
            return False

    def _with_digests(self, message: m.ToWorker, model: str) -> m.ToWorker:
        """A Prepare or Switch carries the digests verification computed for its version (a
        dozen stat calls, no reading), so each worker re-hashes only files that changed."""
        if not isinstance(message, m.Prepare | m.Switch):
            return message
        known = checksums.known(self.settings.model_root / model / str(message.version))
        return dataclasses.replace(message, digests=tuple(m.FileDigest(*k, digest) for k, digest in known))

    # -- verifiers -------------------------------------------------------------------------------

    def verified(self, verifier: Verifier) -> None:
        if not verifier.running:
            # Dropped earlier in the same loop turn (a stop, its death reaped): whatever it
            # sent is moot, and its socket is already closed.
            return
        model = next(name for name, v in self.verifiers.items() if v is verifier)
        result = verifier.read()
        if result is None:
            self.verifier_died(model)
        else:
            self.event(co.VersionVerified(*result), model)

    def verifier_died(self, model: str) -> None:
        failed = self.verifiers[model].died()
        if failed is not None:
            log.error("verifier_died", model=model, ticket=failed[0])
            self.event(co.VersionVerified(*failed), model)

    def reaped(self, pid: int) -> bool:
        """True if `pid` was a verifier (its job fails with the reason)."""
        model = next((name for name, v in self.verifiers.items() if v.pid == pid), None)
        if model is None:
            return False
        self.verifiers[model].pid = 0
        self.verifier_died(model)
        return True

    # -- requests --------------------------------------------------------------------------------

    def reload_asked(self, requester: Requester | None, spec: VersionSpec, model: str = "", traceparent: str = ""
                     ) -> None:
        """A Reload or SIGHUP. With a store, the follower first brings the version into the cache
        (off the loop); its answer comes back through store_available / store_refused.
        `traceparent`: the Reload's trace, carried to every worker's part in it."""
        if (model or self.settings.default_model) not in self.reloads:
            if requester is not None:
                self.send(self.pool.slots[requester[0]], m.ReloadRefused(
                    requester[1], ErrorKind.NOT_FOUND, f"this sidecar serves no model {model!r}", "model"))
            return
        if self.store is None:
            self.event(co.ReloadAsked(requester, spec, traceparent=traceparent), model)
            return
        if requester is not None:
            self._store_specs[requester] = (spec, traceparent)
        if not self.store.request(requester, spec):
            self.store_refused(requester, ErrorKind.UNAVAILABLE, "the model store follower is restarting; try again")

    def reload_experiments(self, requester: Requester | None, traceparent: str = "") -> None:
        def versions_of(model: str) -> list[int]:
            try:
                return version_dirs.list_versions(self.settings.model_root / model)
            except OSError:
                return []

        checked = self.experiments.check(list(self.reloads), versions_of)
        self.rolled(self.rollout.asked(requester, checked, time.monotonic(), traceparent))

    def wanted(self, requests: list[ReloadWanted]) -> None:
        for want in requests:
            self.event(co.ReloadAsked(None, want.spec, pin=want.pin), want.model)

    def look(self, now: float) -> None:
        """The watch's turn: newer versions under the root, a changed experiments file."""
        if not self.watch.due(now):
            return
        self.wanted(self.watch.look(self.reloads.items()))
        if not self.rollout.busy and self.experiments.changed(self.experiments_served()):
            log.info("watch_found_experiments", file=str(self.settings.experiments))
            self.reload_experiments(None)
        if not self.rules.busy and self.rules_file.changed(self.rules_served()):
            log.info("watch_found_rules", file=str(self.settings.rules))
            self.reload_rules(None)

    # -- ranking rules ---------------------------------------------------------------------------

    def reload_rules(self, requester: Requester | None, traceparent: str = "") -> None:
        self.rules_rolled(self.rules.asked(requester, self.rules_file.check(), time.monotonic(), traceparent))

    def rules_rolled(self, actions: list[ro.Action]) -> None:
        """Carries out what the rules rollout returns."""
        for action in actions:
            match action:
                case Send(slot, message):
                    if isinstance(message, m.PrepareRules) and slot == min(self.rules.ready, default=-1):
                        log.info("rules_rollout", generation=message.generation)
                    self.send(self.pool.slots[slot], message, rules=True)
                case Reply(requester, message):
                    self.send(self.pool.slots[requester[0]], message)
                case ro.Outcome(ok, generation, message, field_name, file_refused):
                    if file_refused:
                        self.rules_file.workers_refused()
                    if ok:
                        self.payloads.keep_only(self._payloads_in_use())
                        served = self.rules_served()
                        log.info("rules_done", generation=generation, rule_sets=len(served.rule_sets),
                                 hidden=len(served.hide))
                    else:
                        log.warning("rules_refused", generation=generation, error=message, field=field_name)
                case _:
                    assert_never(action)

    # -- the store follower ----------------------------------------------------------------------

    def store_available(self, requester: Requester | None, version: int) -> None:
        model = self.settings.default_model
        if requester is None:
            self.wanted(self.watch.offered(model, self.reloads[model], version))
            return
        spec, traceparent = self._store_specs.pop(requester, (LATEST, ""))
        self.event(co.ReloadAsked(requester, version, pin=spec is not LATEST, traceparent=traceparent), model)

    def store_refused(self, requester: Requester | None, kind: ErrorKind, message: str) -> None:
        if requester is not None:
            self._store_specs.pop(requester, None)
        metrics.reload_finished(kind.name)
        log.warning("reload_failed", code=kind.name, error=message)
        if requester is not None:
            self.send(self.pool.slots[requester[0]], m.ReloadRefused(requester[1], kind, message, "version"))

    def store_status(self, status: StoreStatus) -> None:
        for slot in self.pool.up():
            self.send(slot, status)

    # -- workers ---------------------------------------------------------------------------------

    def booted(self, slot: WorkerSlot, ready: m.Ready) -> None:
        for served in ready.versions:
            self.event(co.WorkerBooted(slot.slot, served.version), served.model)
        self.rolled(self.rollout.booted(slot.slot, ready.experiments_generation))
        self.rules_rolled(self.rules.booted(slot.slot, ready.rules_generation))
        if self.store is not None and self.store.last_status is not None:
            self.send(slot, self.store.last_status)

    def topology(self) -> None:
        """Where every worker that is up listens, to every worker that is up."""
        workers = m.Workers(tuple(m.WorkerEntry(s.pid, s.address) for s in self.pool.up()))
        for slot in self.pool.up():
            self.send(slot, workers)

    def worker_exited(self, slot: WorkerSlot, status: int, now: float, *, stopping: bool) -> bool:
        """A worker's exit, reaped: its slot restarts it (unless stopping) and every transaction
        it took part in hears of its death. True when the slot gave up: its workers keep
        failing to boot."""
        done = self.pool.exited(slot, status, now, restart=not stopping)
        if stopping:
            return False
        log.warning("worker_exit", slot=slot.slot, code=done.code, was_ready=done.was_ready,
                    killed_for=done.killed_for or None)
        cause = co.Death.TIMED_OUT if done.killed_for else co.Death.EXITED
        self.died(slot.slot, cause, done.killed_for or f"exit code {done.code}")
        if done.gave_up:
            log.error("worker_cannot_boot", slot=slot.slot, failures=slot.boot_failures)
            return True
        self.topology()
        return False

    def died(self, slot: int, cause: co.Death, detail: str) -> None:
        self.event(co.WorkerDied(slot, cause, detail))
        self.rolled(self.rollout.died(slot))
        self.rules_rolled(self.rules.died(slot))

    def answered(self, slot: WorkerSlot, message: m.ToSupervisor) -> bool:
        """A worker's part in a reload or a rollout; False: not one."""
        match message:
            case m.ReloadRequest(request_id, spec, model, traceparent):
                self.reload_asked((slot.slot, request_id), spec, model, traceparent)
            case m.Prepared() | m.PrepareFailed() | m.Committed() | m.CommitFailed():
                self.event(co.WorkerAnswered(slot.slot, message), message.model)
            case m.ReloadExperimentsRequest(request_id, traceparent):
                self.reload_experiments((slot.slot, request_id), traceparent)
            case m.ExperimentsPrepared(generation):
                self.rolled(self.rollout.prepared(slot.slot, generation))
            case m.ExperimentsPrepareFailed(generation, error, field_name):
                self.rolled(self.rollout.prepare_failed(slot.slot, generation, error, field_name))
            case m.ExperimentsApplied(generation):
                self.rolled(self.rollout.applied(slot.slot, generation))
            case m.ReloadRulesRequest(request_id, traceparent):
                self.reload_rules((slot.slot, request_id), traceparent)
            case m.RulesPrepared(generation):
                self.rules_rolled(self.rules.prepared(slot.slot, generation))
            case m.RulesPrepareFailed(generation, error, field_name):
                self.rules_rolled(self.rules.prepare_failed(slot.slot, generation, error, field_name))
            case m.RulesApplied(generation):
                self.rules_rolled(self.rules.applied(slot.slot, generation))
            case _:
                return False
        return True

    def tick(self, now: float) -> None:
        self.event(co.Tick())
        self.rolled(self.rollout.tick(now))
        self.rules_rolled(self.rules.tick(now))
        if self.store is not None:
            self.store.tick(now)
            status = self.store.last_status
            metrics.store_state(self.store.proc is not None, status is not None and bool(status.error))

    def shutdown(self) -> None:
        self.event(co.ShutdownBegan())
        self.rolled(self.rollout.shutdown())
        self.rules_rolled(self.rules.shutdown())
        # A verification in progress (hashing a huge file) must not hold up the exit.
        for verifier in self.verifiers.values():
            verifier.died()
