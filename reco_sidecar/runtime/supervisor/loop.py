"""The pre-fork master's loop: waits on signals (a self-pipe: handlers only enqueue), the
workers' control sockets, the verifier and, optionally, stdin; feeds what happened to the
pool (processes) and the coordinator (reloads, coordinator.py) and carries out what the
coordinator returns. Nothing slow runs here: verification happens in verifier.py."""

from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any, assert_never

from reco_sidecar.artifact import checksums, source
from reco_sidecar.common import logs
from reco_sidecar.common.errors import ErrorKind
from reco_sidecar.common.exit_codes import ExitCode
from reco_sidecar.common.versions import LATEST, VersionSpec, parse_version_spec, spec_text
from reco_sidecar.experiments.checks import ExperimentsFile
from reco_sidecar.ranking.rules import RulesFile
from reco_sidecar.runtime import wire as m
from reco_sidecar.runtime.supervisor import experiments_rollout as rollout
from reco_sidecar.runtime.supervisor import model_reload as co
from reco_sidecar.runtime.supervisor import ports, rules_rollout
from reco_sidecar.runtime.supervisor.pool import Pool, WorkerSlot, signal_pid
from reco_sidecar.runtime.supervisor.store_bridge import Handlers, StoreLink
from reco_sidecar.runtime.supervisor.verifier import Verifier
from reco_sidecar.serving import metrics
from reco_sidecar.settings import ServeSettings

log = logs.get(__name__)
TICK = 0.1


class Supervisor:
    def __init__(self, settings: ServeSettings, versions: dict[str, int], store: StoreLink | None = None,
                 experiments: ExperimentsFile | None = None, failed: dict[str, dict[int, str]] | None = None,
                 rules: RulesFile | None = None) -> None:
        self.s = settings
        self.version = versions[settings.default_model]
        # With a model store, its follower process watches and downloads; the loop only hears
        # "version N is in the cache" and asks the coordinator for the usual reload.
        self.store = store
        self.store_handlers = Handlers(self._store_available, self._store_refused, self._store_status)
        self.announced = False
        self.stopping = False
        self.exit_code: int = ExitCode.OK
        self.stop_deadline = 0.0
        self.last_activity = time.monotonic()
        self.next_watch = time.monotonic() + settings.watch if settings.watch and store is None else float("inf")
        self._wake_r = self._wake_w = -1
        self._last_timers = time.monotonic()
        self._pin_noted: dict[str, tuple[int, int]] = {}
        # What each Reload sent to the store follower asked for: its answer names only a number.
        self._store_specs: dict[co.Requester, VersionSpec] = {}
        # One reload coordinator and one verifier per model: each model reloads on its own.
        self.models = {name: _Served(co.Coordinator(settings.workers, version, model=name,
                                                    timeout=settings.reload_timeout,
                                                    failed=(failed or {}).get(name)),
                                     Verifier(settings.model_root / name))
                       for name, version in versions.items()}
        self.coordinator = self.models[settings.default_model].coordinator
        self.rollout = rollout.Rollout(settings.experiments, settings.workers, settings.reload_timeout)
        if experiments is not None:
            self.rollout.current = experiments
        self.rules = rules_rollout.RulesRollout(settings.rules, settings.workers, settings.reload_timeout)
        if rules is not None:
            self.rules.current, self.rules.generation = rules, 1
        self.pool: Pool | None = None

    # -- start -----------------------------------------------------------------------------------

    def run(self) -> int:
        try:
            return self._run()
        finally:
            if self.store is not None:
                self.store.close()

    def _run(self) -> int:
        try:
            port = ports.probe(self.s.host, self.s.port)
            privates = [ports.probe(self.s.host, 0) for _ in range(self.s.workers)]
            # Before the first fork: workers inherit the metrics directory.
            exporter = metrics.Exporter.start(self.s.host, self.s.metrics_port)
        except ports.PortInUse as e:
            log.error("port_in_use", error=str(e))
            print(f"reco-sidecar serve: {e}", file=sys.stderr)
            return ExitCode.PORT_IN_USE
        self.s = dataclasses.replace(self.s, port=port)
        self.pool = Pool(self.s, privates, self._fds_for_children)
        self._install_signals()
        log.info("supervisor_start", port=port, workers=self.s.workers, models=list(self.models),
                 default_model=self.s.default_model,
                 versions=self._serving(), experiments=len(self.rollout.current.experiments.experiments),
                 worker_timeout=self.s.worker_timeout)
        now = time.monotonic()
        for slot in self.pool.slots:
            self.pool.spawn(slot, self._serving(), now, self.rollout.current, self.rollout.generation,
                            self._failed(), rules=self.rules.current, rules_generation=self.rules.generation)
        if self.store is not None:
            self.store.serving(self.version)
        try:
            return self._loop()
        finally:
            for served in self.models.values():
                served.verifier.kill()
            self.pool.kill_all(signal.SIGKILL)
            self.pool.wait_all(2.0)
            exporter.close()

    def _fds_for_children(self) -> list[int]:
        """What a forked child must close: the other workers' channels, the wake pipe, the verifier."""
        assert self.pool is not None
        fds = [*self.pool.channel_fds(), self._wake_r, self._wake_w]
        fds += [served.verifier.fileno() for served in self.models.values() if served.verifier.running]
        if self.store is not None:
            fds += self.store.fds()
        return fds

    def _install_signals(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        signal.set_wakeup_fd(self._wake_w)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP):
            signal.signal(sig, lambda *_: None)  # the wakeup fd carries the signal number

    # -- loop ------------------------------------------------------------------------------------

    def _loop(self) -> int:
        assert self.pool is not None
        watch_stdin = self.s.exit_on_stdin_eof
        while True:
            now = time.monotonic()
            if self.stopping and (all(s.pid == 0 for s in self.pool.slots) or now > self.stop_deadline):
                if any(s.pid for s in self.pool.slots):
                    log.warning("workers_killed_after_grace")
                log.info("supervisor_exit", code=int(self.exit_code))
                return int(self.exit_code)
            fds: list[Any] = [self._wake_r, *(s.channel for s in self.pool.slots if s.channel is not None)]
            fds += [served.verifier for served in self.models.values() if served.verifier.running]
            if watch_stdin:
                fds.append(sys.stdin)
            store_fd = self.store.fileno() if self.store is not None else -1
            if store_fd >= 0:
                fds.append(store_fd)
            readable, _, _ = select.select(fds, [], [], TICK)
            for r in readable:
                if r is self._wake_r or r == self._wake_r:
                    self._signals()
                elif r is sys.stdin:
                    if not os.read(sys.stdin.fileno(), 4096):
                        watch_stdin = False
                        self._stop("stdin closed", fast=True)
                elif isinstance(r, Verifier):
                    self._verifier_readable(self._model_of(r))
                elif self.store is not None and r == store_fd:
                    self.store.readable(self.store_handlers)
                else:
                    self._message(r)
            self._timers(time.monotonic())

    def _serving(self) -> dict[str, int]:
        """The version of every model a worker started now boots."""
        return {name: served.coordinator.serving for name, served in self.models.items()}

    def _failed(self) -> dict[str, tuple[tuple[int, str], ...]]:
        """The versions of every model known bad, for a worker started now."""
        return {name: served.coordinator.failed_versions() for name, served in self.models.items()}

    def _model_of(self, verifier: Verifier) -> str:
        return next(name for name, served in self.models.items() if served.verifier is verifier)

    def _event(self, event: co.Event, model: str | None = None) -> None:
        """To the coordinator of `model` (the default model when empty); None: to every one."""
        names = list(self.models) if model is None else [model or self.s.default_model]
        for name in names:
            served = self.models.get(name)
            if served is None:
                continue
            for action in served.coordinator.handle(event, time.monotonic()):
                self._do(action, name)

    def _do(self, action: co.Action, model: str | None = None) -> None:
        assert self.pool is not None
        model = model or self.s.default_model
        verifier = self.models[model].verifier
        match action:
            case co.Send(slot, message):
                self._send(self.pool.slots[slot], self._with_digests(message, model))
            case co.Reply(requester, message):
                self._send(self.pool.slots[requester[0]], message)
            case co.StartVerify(ticket, spec, known_bad):
                if not verifier.running:
                    verifier.start(self._fds_for_children())
                if not verifier.submit(ticket, spec, known_bad):
                    self._verifier_died(model)
            case co.StopVerify():
                log.error("verification_timeout", model=model)
                verifier.died()
            case co.Kill(slot, reason):
                log.error("worker_replaced", slot=slot, reason=reason)
                self.pool.kill(self.pool.slots[slot], reason)
            case co.VersionFailed(version, reason):
                log.error("version_failed", model=model, version=version, error=reason)
                metrics.version_failed()
                # Every worker lists it FAILED (GetModelStatus), also one still booting: its
                # control socket holds the message until it reads it.
                for each in self.pool.slots:
                    self._send(each, m.MarkFailed(version, reason, model))
            case co.Finished():
                self._finished(action, model)
            case co.Began(txn, version, old_version):
                log.info("reload_start", model=model, txn=txn, version=version, old_version=old_version)
            case _:
                assert_never(action)

    def _finished(self, f: co.Finished, model: str) -> None:
        self.version = self.coordinator.serving
        if f.ok and self.store is not None:
            self.store.serving(self.version)
        if f.ok and f.noop:
            log.info("reload_done", model=model, version=f.version, old_version=f.old_version, workers=f.workers,
                     noop=True, pinned=f.pinned)
        elif f.ok:
            metrics.reload_finished("ok", f.seconds)
            log.info("reload_done", model=model, version=f.version, old_version=f.old_version, workers=f.workers,
                     load_seconds=round(f.load_seconds, 4), seconds=round(f.seconds, 4), pinned=f.pinned)
        else:
            kind = f.kind or ErrorKind.FAILED_PRECONDITION
            metrics.reload_finished(kind.name)
            log.warning("reload_failed", model=model, code=kind.name, version=f.version, error=f.message)

    # -- signals and processes -------------------------------------------------------------------

    def _signals(self) -> None:
        try:
            data = os.read(self._wake_r, 512)
        except BlockingIOError:
            return
        for signum in data:
            if signum in (signal.SIGTERM, signal.SIGINT):
                self._stop(signal.Signals(signum).name)
            elif signum == signal.SIGHUP:
                for name in self.models:
                    self._reload_asked(None, LATEST, name)
        self._reap()

    def _reap(self) -> None:
        assert self.pool is not None
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            verifying = next((name for name, s in self.models.items() if s.verifier.pid == pid), None)
            if verifying is not None:
                self.models[verifying].verifier.pid = 0
                self._verifier_died(verifying)
                continue
            slot = self.pool.by_pid(pid)
            if slot is not None:
                self._worker_exited(slot, status)
            metrics.process_dead(pid)

    def _worker_exited(self, slot: WorkerSlot, status: int) -> None:
        assert self.pool is not None
        done = self.pool.exited(slot, status, time.monotonic(), restart=not self.stopping)
        if self.stopping:
            return
        cause = co.Death.TIMED_OUT if done.killed_for else co.Death.EXITED
        log.warning("worker_exit", slot=slot.slot, code=done.code, was_ready=done.was_ready,
                    killed_for=done.killed_for or None)
        self._event(co.WorkerDied(slot.slot, cause, done.killed_for or f"exit code {done.code}"))
        self._rolled(self.rollout.died(slot.slot))
        self._rules_rolled(self.rules.died(slot.slot))
        if done.gave_up:
            log.error("worker_cannot_boot", slot=slot.slot, failures=slot.boot_failures)
            self.exit_code = ExitCode.WORKERS_FAILED
            self._stop("a worker cannot boot", fast=True)
            return
        self._broadcast_topology()

    def _verifier_readable(self, model: str) -> None:
        result = self.models[model].verifier.read()
        if result is None:
            self._verifier_died(model)
            return
        self._event(co.VersionVerified(*result), model)

    def _verifier_died(self, model: str) -> None:
        failed = self.models[model].verifier.died()
        if failed is not None:
            log.error("verifier_died", model=model, ticket=failed[0])
            self._event(co.VersionVerified(*failed), model)

    def _timers(self, now: float) -> None:
        assert self.pool is not None
        if self.stopping:
            return
        for slot in self.pool.due_restarts(now):
            self.pool.spawn(slot, self._serving(), now, self.rollout.current, self.rollout.generation,
                            self._failed(), rules=self.rules.current, rules_generation=self.rules.generation)
        if now - self._last_timers > self.s.worker_timeout / 2:
            # This loop itself did not run (the supervisor was stopped or starved): the workers'
            # beats are waiting unread in their sockets, so a late beat is not theirs.
            log.warning("supervisor_stalled", seconds=round(now - self._last_timers, 3))
            self.pool.forgive(now)
        self._last_timers = now
        for slot in self.pool.overdue(now):
            reason = f"no heartbeat for {now - slot.last_beat:.1f} s (--worker-timeout {self.s.worker_timeout:g})"
            log.error("worker_timeout", slot=slot.slot, worker_pid=slot.pid, ready=slot.ready, reason=reason)
            metrics.worker_timeout()
            self.pool.kill(slot, reason)
        self._event(co.Tick())
        self._rolled(self.rollout.tick(now))
        self._rules_rolled(self.rules.tick(now))
        if self.store is not None:
            self.store.tick(now)
        if self.s.parent_pid is not None and not _alive(self.s.parent_pid):
            self._stop("parent process gone", fast=True)
            return
        if self.pool.busy() or self.rollout.busy or any(s.coordinator.busy for s in self.models.values()):
            self.last_activity = now
        if self.s.idle_shutdown_after and self.announced and now - self.last_activity > self.s.idle_shutdown_after:
            self._stop("idle", fast=False)
            return
        if now >= self.next_watch:
            self.next_watch = now + self.s.watch
            self._watch()

    def _watch(self) -> None:
        for name, served in self.models.items():
            coordinator = served.coordinator
            try:
                versions = source.list_versions(self.s.model_root / name)
            except OSError as e:
                log.warning("watch_failed", model=name, error=str(e))
                continue
            # Any newer version not known bad: `latest` then picks the newest that verifies.
            newer = [v for v in versions if v > coordinator.serving and v not in coordinator.failed]
            if newer and coordinator.pinned is not None:
                self._pinned_skip(name, coordinator.pinned, newer[-1])
                continue
            if newer and not coordinator.busy:
                log.info("watch_found_version", model=name, version=newer[-1])
                self._event(co.ReloadAsked(None, LATEST), name)
        if self.rollout.file_changed() and not self.rollout.busy:
            log.info("watch_found_experiments", file=str(self.s.experiments))
            self._reload_experiments(None)
        if self.rules.file_changed() and not self.rules.busy:
            log.info("watch_found_rules", file=str(self.s.rules))
            self._rules_rolled(self.rules.asked(None, time.monotonic()))

    def _pinned_skip(self, model: str, pinned: int, newer: int) -> None:
        """An operator's Reload to a number pinned `pinned`: say once per newer version that it
        is left alone, so a rollback is never silently undone."""
        if self._pin_noted.get(model) != (pinned, newer):
            self._pin_noted[model] = (pinned, newer)
            log.info("watch_pinned", model=model, version=newer, pinned=pinned)

    # -- experiments -------------------------------------------------------------------------------

    def _reload_experiments(self, requester: co.Requester | None) -> None:
        def versions_of(model: str) -> list[int]:
            try:
                return source.list_versions(self.s.model_root / model)
            except OSError:
                return []

        self._rolled(self.rollout.asked(requester, list(self.models), versions_of, time.monotonic()))

    def _rolled(self, actions: list[rollout.Action]) -> None:
        """Carries out what the experiments rollout returns."""
        assert self.pool is not None
        for action in actions:
            match action:
                case rollout.Send(slot, message):
                    if isinstance(message, m.PrepareExperiments) and slot == min(self.rollout.ready, default=-1):
                        log.info("experiments_rollout", generation=message.generation)
                    self._send(self.pool.slots[slot], message)
                case rollout.Answer(requester, message):
                    self._send(self.pool.slots[requester[0]], message)
                case rollout.Outcome(ok, generation, message, field_name):
                    if ok:
                        log.info("experiments_done", generation=generation,
                                 experiments=[e.name for e in self.rollout.current.experiments.experiments])
                    else:
                        log.warning("experiments_refused", generation=generation, error=message, field=field_name)
                    metrics.experiments_reloaded("ok" if ok else "refused")
                case _:
                    assert_never(action)

    # -- ranking rules -----------------------------------------------------------------------------

    def _rules_rolled(self, actions: list[rules_rollout.Action]) -> None:
        """Carries out what the rules rollout returns."""
        assert self.pool is not None
        for action in actions:
            match action:
                case rules_rollout.Send(slot, message):
                    self._send(self.pool.slots[slot], message)
                case rules_rollout.Answer(requester, message):
                    self._send(self.pool.slots[requester[0]], message)
                case rules_rollout.Outcome(ok, generation, message, field_name):
                    if ok:
                        log.info("rules_done", generation=generation, rule_sets=len(self.rules.current.rule_sets),
                                 hidden=len(self.rules.current.hide))
                    else:
                        log.warning("rules_refused", generation=generation, error=message, field=field_name)
                case _:
                    assert_never(action)

    # -- the model store ---------------------------------------------------------------------------

    def _reload_asked(self, requester: co.Requester | None, spec: VersionSpec, model: str = "") -> None:
        """A Reload or SIGHUP. With a store, the follower first brings the version into the cache
        (off this loop); its answer comes back through _store_available / _store_refused."""
        assert self.pool is not None
        if (model or self.s.default_model) not in self.models:
            if requester is not None:
                self._send(self.pool.slots[requester[0]], m.ReloadRefused(
                    requester[1], ErrorKind.NOT_FOUND, f"this sidecar serves no model {model!r}", "model"))
            return
        if self.store is None:
            self._event(co.ReloadAsked(requester, spec), model)
            return
        if requester is not None:
            self._store_specs[requester] = spec
        if not self.store.request(requester, spec_text(spec)):
            self._store_refused(requester, ErrorKind.UNAVAILABLE.name,
                                "the model store follower is restarting; try again")

    def _store_available(self, requester: co.Requester | None, version: int) -> None:
        if requester is None:
            if version in self.coordinator.failed:
                return  # the watch does not retry a version that failed to load
            if self.coordinator.pinned is not None:
                if version != self.coordinator.pinned:
                    self._pinned_skip(self.s.default_model, self.coordinator.pinned, version)
                return
            self._event(co.ReloadAsked(None, version, pin=False))
            return
        spec = self._store_specs.pop(requester, LATEST)
        self._event(co.ReloadAsked(requester, version, pin=spec is not LATEST))

    def _store_refused(self, requester: co.Requester | None, code: str, message: str) -> None:
        if requester is not None:
            self._store_specs.pop(requester, None)
        kind = ErrorKind[code] if code in ErrorKind.__members__ else ErrorKind.UNAVAILABLE
        metrics.reload_finished(kind.name)
        log.warning("reload_failed", code=kind.name, error=message)
        if requester is not None:
            self._do(co.Reply(requester, m.ReloadRefused(requester[1], kind, message, "version")))

    def _store_status(self, status: dict[str, Any]) -> None:
        assert self.pool is not None
        message = _store_message(status)
        for s in self.pool.slots:
            if s.ready:
                self._send(s, message)

    # -- messages from workers -------------------------------------------------------------------

    def _message(self, channel: Any) -> None:
        assert self.pool is not None
        slot = next((s for s in self.pool.slots if s.channel is channel), None)
        if slot is None:
            return
        try:
            message = channel.recv_to_supervisor()
        except ValueError as e:
            log.error("control_message_invalid", slot=slot.slot, error=str(e))
            self.pool.kill(slot, f"sent an invalid control message: {e}")
            return
        if message is None:
            # The worker closed its end; reaping it happens on SIGCHLD.
            slot.channel = None
            channel.close()
            self._reap()
            return
        now = time.monotonic()
        match message:
            case m.Heartbeat(_, calls, in_flight):
                if self.pool.beat(slot, calls, in_flight, now):
                    self.last_activity = now
            case m.Ready():
                self._ready(slot, message)
            case m.BootFailed(_, error):
                log.error("worker_failed", slot=slot.slot, error=error)
            case m.ReloadRequest(request_id, text, model):
                self.last_activity = now
                self._reload_asked((slot.slot, request_id), parse_version_spec(text), model)
            case m.Prepared() | m.PrepareFailed() | m.Committed() | m.CommitFailed():
                self._event(co.WorkerAnswered(slot.slot, message), message.model)
            case m.ReloadExperimentsRequest(request_id):
                self.last_activity = now
                self._reload_experiments((slot.slot, request_id))
            case m.ExperimentsPrepared(generation):
                self._rolled(self.rollout.prepared(slot.slot, generation))
            case m.ExperimentsPrepareFailed(generation, error, field_name):
                self._rolled(self.rollout.prepare_failed(slot.slot, generation, error, field_name))
            case m.ExperimentsApplied(generation):
                self._rolled(self.rollout.applied(slot.slot, generation))
            case m.ReloadRulesRequest(request_id):
                self.last_activity = now
                self._rules_rolled(self.rules.asked((slot.slot, request_id), now))
            case m.RulesApplied(generation):
                self._rules_rolled(self.rules.applied(slot.slot, generation))
            case _:
                assert_never(message)

    def _ready(self, slot: WorkerSlot, message: m.Ready) -> None:
        assert self.pool is not None
        slot.ready, slot.address, slot.boot_failures = True, message.address, 0
        slot.last_beat = time.monotonic()
        for served in message.versions:
            self._event(co.WorkerBooted(slot.slot, served.version), served.model)
        self._rolled(self.rollout.booted(slot.slot, message.experiments_generation))
        self._rules_rolled(self.rules.booted(slot.slot))
        self._broadcast_topology()
        if self.store is not None and self.store.last_status is not None:
            self._send(slot, _store_message(self.store.last_status))
        if not self.announced and all(s.ready for s in self.pool.slots):
            self.announced = True
            self.last_activity = time.monotonic()
            line = {
                "event": "ready", "port": self.s.port, "pid": os.getpid(), "workers": len(self.pool.slots),
                "model": self.s.default_model, "version": self.coordinator.serving, "models": self._serving(),
                "address": self.s.shared_address,
                "worker_addresses": [s.address for s in self.pool.slots],
            }
            try:
                sys.stdout.write(json.dumps(line) + "\n")
                sys.stdout.flush()
            except (BrokenPipeError, ValueError):
                # Whoever started us stopped listening before we were ready: nobody will use us.
                self._stop("stdout closed before ready", fast=True)
                return
            log.info("ready", **{k: v for k, v in line.items() if k != "event"})

    def _broadcast_topology(self) -> None:
        assert self.pool is not None
        workers = m.Workers(tuple(m.WorkerEntry(s.pid, s.address) for s in self.pool.slots if s.ready))
        for s in self.pool.slots:
            if s.ready:
                self._send(s, workers)

    def _with_digests(self, message: m.ToWorker, model: str) -> m.ToWorker:
        """A Prepare or Switch carries the digests verification computed for its version (a
        dozen stat calls, no reading), so each worker re-hashes only files that changed."""
        if not isinstance(message, m.Prepare | m.Switch):
            return message
        known = checksums.known(self.s.model_root / (message.model or self.s.default_model) / str(message.version))
        return dataclasses.replace(message, digests=tuple(m.FileDigest(*k, digest) for k, digest in known))

    @staticmethod
    def _send(slot: WorkerSlot, message: m.ToWorker) -> bool:
        return slot.channel is not None and slot.channel.send(message)

    # -- stop ------------------------------------------------------------------------------------

    def _stop(self, reason: str, *, fast: bool = False) -> None:
        assert self.pool is not None
        if self.stopping:
            return
        self.stopping = True
        grace = min(self.s.grace, 1.0) if fast else self.s.grace
        self.stop_deadline = time.monotonic() + grace + 2.0
        log.info("supervisor_stopping", reason=reason, grace=grace)
        self._event(co.ShutdownBegan())
        self._rolled(self.rollout.shutdown())
        self._rules_rolled(self.rules.shutdown())
        # A verification in progress (hashing a huge file) must not hold up the exit.
        for served in self.models.values():
            served.verifier.died()
        for slot in self.pool.slots:
            if slot.pid and not self._send(slot, m.Shutdown(fast)):
                signal_pid(slot.pid, signal.SIGTERM)


@dataclass(frozen=True)
class _Served:
    coordinator: co.Coordinator
    verifier: Verifier


def _store_message(status: dict[str, Any]) -> m.StoreStatus:
    return m.StoreStatus(**{**status, "cached_versions": tuple(status["cached_versions"])})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie parent is dead for our purposes; so is being re-parented away from it.
    return os.getppid() == pid or not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False
