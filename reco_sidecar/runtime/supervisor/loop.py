"""The pre-fork master's loop: waits on signals (a self-pipe: handlers only enqueue), the
workers' channels, the verifiers, the store follower and, optionally, stdin; hands what
happened to the pool (processes) and to the router (routing.py: the reload transactions,
the experiments rollout, the store), and keeps the clock: heartbeats, restarts, the watch,
idle and parent checks, the stop. Nothing slow runs here: verification happens in
verifier.py, downloads in the store follower."""

from __future__ import annotations

import dataclasses
import os
import select
import signal
import sys
import time
from typing import Any

from reco_sidecar.common import logs
from reco_sidecar.common.exit_codes import ExitCode
from reco_sidecar.common.versions import LATEST
from reco_sidecar.experiments.checks import ExperimentsFile
from reco_sidecar.ranking.rules import RulesFile
from reco_sidecar.runtime import wire as m
from reco_sidecar.runtime.learner.supervised import LearnerHandle
from reco_sidecar.runtime.supervisor import parent, ready_line, startup
from reco_sidecar.runtime.supervisor.pool import Pool, WorkerSlot, signal_pid
from reco_sidecar.runtime.supervisor.routing import Router
from reco_sidecar.runtime.supervisor.store_bridge import StoreBridge
from reco_sidecar.runtime.supervisor.verifier import Verifier
from reco_sidecar.serving import metrics
from reco_sidecar.settings import ServeSettings

log = logs.get(__name__)
TICK = 0.1


class Supervisor:
    def __init__(self, settings: ServeSettings, versions: dict[str, int], store: StoreBridge | None = None,
                 experiments: ExperimentsFile | None = None, failed: dict[str, dict[int, str]] | None = None,
                 rules: RulesFile | None = None) -> None:
        self.settings = settings
        self.store = store
        self.router = Router(settings, versions, store, experiments, failed, self._fds_for_children, rules)
        self.announced = self.stopping = False
        self.exit_code: int = ExitCode.OK
        self.stop_deadline = self.last_activity = self._last_timers = time.monotonic()
        self._wake_r = self._wake_w = -1
        # Online learning's one writer (runtime/learner/), when --online-dir is given.
        self.learner: LearnerHandle | None = None

    @property
    def pool(self) -> Pool:
        return self.router.pool

    def run(self) -> int:
        try:
            return self._run()
        finally:
            if self.store is not None:
                self.store.close()
            self.router.payloads.close()

    def _run(self) -> int:
        opened = startup.open_all(self.settings)
        if isinstance(opened, int):
            return opened
        port, privates, exporter, self.learner = opened
        self.router.learner = self.learner
        self.settings = self.router.settings = s = dataclasses.replace(self.settings, port=port)
        self.router.pool = Pool(s, privates, self._fds_for_children)
        self._wake_r, self._wake_w = startup.signals_to_pipe()
        log.info("supervisor_start", port=port, workers=s.workers, models=list(self.router.reloads),
                 default_model=s.default_model, versions=self.router.serving(),
                 experiments=len(self.router.experiments_served().experiments.experiments),
                 worker_timeout=s.worker_timeout)
        if self.learner is not None:  # before the workers: they connect to it as they boot
            self.learner.spawn(self.router.serving()[s.default_model], self._fds_for_children(), time.monotonic())
        self.router.start(time.monotonic())
        try:
            return self._loop()
        finally:
            for verifier in self.router.verifiers.values():
                verifier.kill()
            self.pool.kill_all(signal.SIGKILL)
            self.pool.wait_all(2.0)
            if self.learner is not None:
                self.learner.signal(signal.SIGKILL)
            exporter.close()

    def _fds_for_children(self) -> list[int]:
        """What a forked child must close: the workers' channels, the wake pipe, the verifiers, the follower's."""
        fds = [*self.pool.channel_fds(), self._wake_r, self._wake_w]
        fds += [v.fileno() for v in self.router.verifiers.values() if v.running]
        fds += self.learner.fds() if self.learner is not None else []
        return fds + (self.store.fds() if self.store is not None else [])

    def _loop(self) -> int:
        watch_stdin = self.settings.exit_on_stdin_eof
        while True:
            now = time.monotonic()
            if self.stopping and (all(s.pid == 0 for s in self.pool.slots) or now > self.stop_deadline):
                if any(s.pid for s in self.pool.slots):
                    log.warning("workers_killed_after_grace")
                log.info("supervisor_exit", code=int(self.exit_code))
                return int(self.exit_code)
            fds: list[Any] = [self._wake_r, *(s.channel for s in self.pool.slots if s.channel is not None)]
            learner = self.learner.channel if self.learner is not None else None
            fds += [learner] if learner is not None else []
            fds += [v for v in self.router.verifiers.values() if v.running] + ([sys.stdin] if watch_stdin else [])
            store_fd = self.store.fileno() if self.store is not None else -1
            for r in select.select(fds + ([store_fd] if store_fd >= 0 else []), [], [], TICK)[0]:
                if r is self._wake_r or r == self._wake_r:
                    self._signals()
                elif r is sys.stdin:
                    if not os.read(sys.stdin.fileno(), 4096):
                        watch_stdin = False
                        self._stop("stdin closed", fast=True)
                elif isinstance(r, Verifier):
                    self.router.verified(r)
                elif self.store is not None and r == store_fd:
                    self.store.readable(self.router.store_handlers)
                elif learner is not None and r is learner and self.learner is not None:
                    self.learner.readable(time.monotonic())
                else:
                    self._message(r)
            self._timers(time.monotonic())

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
                for name in self.router.reloads:
                    self.router.reload_asked(None, LATEST, name)
        self._reap()

    def _reap(self) -> None:
        for pid, status in self.pool.reap():
            if self.router.reaped(pid):
                continue
            if self.learner is not None and self.learner.exited(pid, status, time.monotonic(),
                                                                restart=not self.stopping):
                metrics.learner_dead(pid)
                continue
            slot = self.pool.by_pid(pid)
            if slot is not None and self.router.worker_exited(slot, status, time.monotonic(), stopping=self.stopping):
                self.exit_code = ExitCode.WORKERS_FAILED
                self._stop("a worker cannot boot", fast=True)
            metrics.process_dead(pid)

    def _timers(self, now: float) -> None:
        if self.stopping:
            return
        for slot in self.pool.due_restarts(now):
            self.router.spawn(slot, now)
        timeout = self.settings.worker_timeout
        if now - self._last_timers > timeout / 2:
            # This loop itself did not run (the supervisor was stopped or starved): the workers'
            # beats are waiting unread in their sockets, so a late beat is not theirs.
            log.warning("supervisor_stalled", seconds=round(now - self._last_timers, 3))
            self.pool.forgive(now)
            if self.learner is not None:
                self.learner.forgive(now)
        self._last_timers = now
        self.pool.kill_overdue(now)
        if self.learner is not None:
            self.learner.tick(now, timeout, lambda: self.router.serving()[self.settings.default_model],
                              self._fds_for_children)
        self.router.tick(now)
        if self.settings.parent_pid is not None and not parent.alive(self.settings.parent_pid):
            self._stop("parent process gone", fast=True)
            return
        if self.pool.busy() or self.router.busy:
            self.last_activity = now
        idle = self.settings.idle_shutdown_after
        if idle and self.announced and now - self.last_activity > idle:
            self._stop("idle", fast=False)
            return
        self.router.look(now)

    # -- messages from workers -------------------------------------------------------------------

    def _message(self, channel: Any) -> None:
        slot = self.pool.by_channel(channel)
        if slot is None:
            return
        try:
            message = channel.recv(m.decode_to_supervisor)
        except ValueError as e:
            log.error("control_message_invalid", slot=slot.slot, error=str(e))
            self.pool.kill(slot, f"sent an invalid control message: {e}")
            return
        if message is None:
            self.pool.closed(slot)
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
                self.pool.boot_failed(slot, self.announced)
            case _:
                if isinstance(message, m.ReloadRequest | m.ReloadExperimentsRequest):
                    self.last_activity = now
                self.router.answered(slot, message)

    def _ready(self, slot: WorkerSlot, message: m.Ready) -> None:
        self.pool.ready(slot, message.address, time.monotonic())
        self.router.booted(slot, message)
        self.router.topology()
        if self.announced or not self.pool.all_ready():
            return
        self.announced, self.last_activity = True, time.monotonic()
        if not ready_line.announce_pool(self.settings, self.pool, self.router.serving()):
            self._stop("stdout closed before ready", fast=True)  # whoever started us stopped listening

    # -- stop ------------------------------------------------------------------------------------

    def _stop(self, reason: str, *, fast: bool = False) -> None:
        if self.stopping:
            return
        self.stopping = True
        grace = min(self.settings.grace, 1.0) if fast else self.settings.grace
        self.stop_deadline = time.monotonic() + grace + 2.0
        log.info("supervisor_stopping", reason=reason, grace=grace)
        self.router.shutdown()
        for slot in self.pool.slots:
            if slot.pid and not self.router.send(slot, m.Shutdown(fast)):
                signal_pid(slot.pid, signal.SIGTERM)
        if self.learner is not None:
            self.learner.signal(signal.SIGTERM)
