"""The worker pool: one slot per worker, fork, reap, restart with backoff, the boot-failure
limit and the heartbeat deadline. It knows processes, not reloads: the caller says which
versions and which experiments a new worker boots with (`spawn`)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from reco_sidecar.common import logs
from reco_sidecar.common.exit_codes import ExitCode
from reco_sidecar.experiments.checks import ExperimentsFile
from reco_sidecar.experiments.counters import SharedCounters
from reco_sidecar.ranking.rules import RulesFile
from reco_sidecar.runtime.channel import Channel, pair
from reco_sidecar.runtime.supervisor import ports
from reco_sidecar.runtime.worker import process as worker
from reco_sidecar.serving import metrics
from reco_sidecar.settings import ServeSettings

log = logs.get(__name__)
MAX_BOOT_FAILURES = 5
MAX_BACKOFF = 5.0


@dataclass
class WorkerSlot:
    slot: int
    private_port: int
    pid: int = 0
    channel: Channel | None = None
    ready: bool = False
    address: str = ""
    boot_failures: int = 0
    restart_at: float | None = None
    last_beat: float = 0.0
    calls: int = -1
    in_flight: int = 0
    # Why the pool killed it, if it did (so its exit reads as a timeout, not a crash).
    killed_for: str = ""


@dataclass(frozen=True)
class Exit:
    slot: WorkerSlot
    code: int
    was_ready: bool
    killed_for: str
    gave_up: bool  # MAX_BOOT_FAILURES boot failures in a row


class Pool:
    def __init__(self, settings: ServeSettings, private_ports: list[int],
                 close_in_child: Callable[[], list[int]]) -> None:
        self.settings = settings
        self.slots = [WorkerSlot(i, p) for i, p in enumerate(private_ports)]
        # Before the first fork, so every worker maps the same pages.
        self.counters = SharedCounters(len(private_ports))
        self._close_in_child = close_in_child

    def spawn(self, slot: WorkerSlot, versions: dict[str, int], now: float,
              experiments: ExperimentsFile | None = None, generation: int = 0,
              failed: dict[str, tuple[tuple[int, str], ...]] | None = None, *,
              rules: RulesFile | None = None, rules_generation: int = 0) -> None:
        parent_end, child_end = pair()
        sys.stdout.flush()
        sys.stderr.flush()
        spec = worker.WorkerSpec(slot.slot, slot.private_port, dict(versions), os.getpid(),
                                 experiments or ExperimentsFile.empty(), generation, counters=self.counters,
                                 failed=dict(failed or {}), rules=rules or RulesFile.empty(),
                                 rules_generation=rules_generation)
        inherited = self._close_in_child()
        pid = os.fork()
        if pid == 0:  # child
            code: int = ExitCode.WORKERS_FAILED
            try:
                parent_end.close()
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_DFL)
                for fd in inherited:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                code = worker.run(self.settings, spec, Channel(child_end))
            except BaseException:
                log.exception("worker_crashed", slot=slot.slot)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        child_end.close()
        slot.pid, slot.channel, slot.ready, slot.restart_at = pid, Channel(parent_end), False, None
        slot.last_beat, slot.calls, slot.in_flight, slot.killed_for = now, -1, 0, ""
        log.info("worker_start", slot=slot.slot, worker_pid=pid, versions=versions)

    def ready(self, slot: WorkerSlot, address: str, now: float) -> None:
        """The worker serves: its boot succeeded, so the boot-failure count starts again."""
        slot.ready, slot.address, slot.boot_failures, slot.last_beat = True, address, 0, now

    def move(self, slot: WorkerSlot, private_port: int) -> None:
        """The slot's next worker listens on `private_port` (before any client was told the old one)."""
        slot.private_port = private_port

    def boot_failed(self, slot: WorkerSlot, announced: bool) -> None:
        """A worker could not boot. The private port was free when probed, but the kernel may
        have handed it to another socket since (an outgoing connection's ephemeral port, held
        for as long as that connection lives). Until the ready line names the workers'
        addresses (`announced`), the next try takes a freshly probed port."""
        if not announced:
            self.move(slot, ports.probe(self.settings.host, 0))

    def closed(self, slot: WorkerSlot) -> None:
        """The worker closed its channel; reaping it happens on SIGCHLD."""
        if slot.channel is not None:
            slot.channel.close()
        slot.channel = None

    def by_channel(self, channel: object) -> WorkerSlot | None:
        return next((s for s in self.slots if s.channel is channel), None)

    def all_ready(self) -> bool:
        return all(s.ready for s in self.slots)

    def up(self) -> list[WorkerSlot]:
        return [s for s in self.slots if s.ready]

    def channel_fds(self) -> list[int]:
        return [s.channel.fileno() for s in self.slots if s.channel is not None]

    def by_pid(self, pid: int) -> WorkerSlot | None:
        return next((s for s in self.slots if s.pid == pid and pid), None)

    def exited(self, slot: WorkerSlot, status: int, now: float, *, restart: bool) -> Exit:
        code = os.waitstatus_to_exitcode(status)
        was_ready, killed_for = slot.ready, slot.killed_for
        if slot.channel is not None:
            slot.channel.close()
        slot.pid, slot.channel, slot.ready, slot.killed_for = 0, None, False, ""
        gave_up = False
        if restart:
            # One that never became ready (a crash, or hung while booting) is a boot failure.
            slot.boot_failures = 0 if was_ready else slot.boot_failures + 1
            gave_up = slot.boot_failures >= MAX_BOOT_FAILURES
            backoff = 0.0 if was_ready else min(MAX_BACKOFF, 0.1 * 2 ** slot.boot_failures)
            slot.restart_at = now + backoff
        return Exit(slot, code, was_ready, killed_for, gave_up)

    @staticmethod
    def reap() -> Iterator[tuple[int, int]]:
        """(pid, status) of every child that exited, workers or not, without waiting."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            yield pid, status

    def due_restarts(self, now: float) -> list[WorkerSlot]:
        return [s for s in self.slots if s.pid == 0 and s.restart_at is not None and now >= s.restart_at]

    def beat(self, slot: WorkerSlot, calls: int, in_flight: int, now: float) -> bool:
        """Records a heartbeat; True if the worker did anything since the last one."""
        slot.last_beat = now
        active = in_flight > 0 or calls != slot.calls
        slot.calls, slot.in_flight = calls, in_flight
        return active

    def overdue(self, now: float) -> list[WorkerSlot]:
        """Live workers whose heartbeat is later than --worker-timeout and not yet killed."""
        timeout = self.settings.worker_timeout
        return [s for s in self.slots if s.pid and not s.killed_for and now - s.last_beat > timeout]

    def kill_overdue(self, now: float) -> None:
        """Kills each live worker whose heartbeat is later than --worker-timeout."""
        timeout = self.settings.worker_timeout
        for slot in self.overdue(now):
            reason = f"no heartbeat for {now - slot.last_beat:.1f} s (--worker-timeout {timeout:g})"
            log.error("worker_timeout", slot=slot.slot, worker_pid=slot.pid, ready=slot.ready, reason=reason)
            metrics.worker_timeout()
            self.kill(slot, reason)

    def forgive(self, now: float) -> None:
        """Restarts every heartbeat deadline from `now`."""
        for slot in self.slots:
            slot.last_beat = max(slot.last_beat, now)

    def kill(self, slot: WorkerSlot, reason: str) -> None:
        if slot.pid and not slot.killed_for:
            slot.killed_for = reason
            signal_pid(slot.pid, signal.SIGKILL)

    def busy(self) -> bool:
        return any(s.in_flight > 0 for s in self.slots if s.pid)

    def kill_all(self, sig: int) -> None:
        for slot in self.slots:
            if slot.pid:
                signal_pid(slot.pid, sig)

    def wait_all(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(s.pid for s in self.slots) and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            slot = self.by_pid(pid)
            if slot is not None:
                slot.pid = 0
            if pid == 0:
                time.sleep(0.01)


def signal_pid(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
