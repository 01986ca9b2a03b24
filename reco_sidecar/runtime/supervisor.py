"""The pre-fork master: forks workers before any gRPC object exists, restarts them with
backoff, coordinates all-or-nothing reloads, watches its parent, stdin and idleness, and
shuts the tree down gracefully. Signal handlers only wake the loop; the loop dispatches."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import select
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from reco_sidecar.artifact import loader, source
from reco_sidecar.common import logs
from reco_sidecar.common.errors import ArtifactError
from reco_sidecar.runtime import ports, worker
from reco_sidecar.runtime.control import Channel, pair
from reco_sidecar.runtime.exit_codes import ExitCode
from reco_sidecar.serving import metrics
from reco_sidecar.settings import ServeSettings

log = logs.get(__name__)
TICK = 0.1
MAX_BOOT_FAILURES = 5
MAX_BACKOFF = 5.0
TXN_TIMEOUT = 600.0


@dataclass
class WorkerSlot:
    slot: int
    private_port: int
    pid: int = 0
    channel: Channel | None = None
    ready: bool = False
    version: int | None = None
    address: str = ""
    boot_failures: int = 0
    restart_at: float | None = None
    calls: int = -1


@dataclass
class Txn:
    id: int
    version: int
    requester: tuple[int, int] | None
    old_version: int
    phase: str = "prepare"
    awaiting: set[int] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    load_seconds: float = 0.0
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    def __init__(self, settings: ServeSettings, version: int) -> None:
        self.s = settings
        self.version = version
        self.slots: list[WorkerSlot] = []
        self.announced = False
        self.stopping = False
        self.exit_code: int = ExitCode.OK
        self.stop_deadline = 0.0
        self.txn: Txn | None = None
        self.txn_ids = 0
        self.reload_queue: collections.deque[tuple[tuple[int, int] | None, str]] = collections.deque()
        self.failed_versions: set[int] = set()
        self.last_activity = time.monotonic()
        self.next_watch = time.monotonic() + settings.watch if settings.watch else float("inf")
        self._wake_r = self._wake_w = -1

    # -- start ---------------------------------------------------------------------------------

    def run(self) -> int:
        try:
            port = ports.probe(self.s.host, self.s.port)
            privates = [ports.probe(self.s.host, 0) for _ in range(self.s.workers)]
            # Before the first fork: workers inherit the metrics directory.
            exporter = metrics.Exporter.start(self.s.host, self.s.metrics_port)
        except ports.PortInUse as e:
            log.error("port_in_use", error=str(e))
            print(f"reco-sidecar serve: {e}", file=sys.stderr)
            return ExitCode.PORT_IN_USE
        from dataclasses import replace

        self.s = replace(self.s, port=port)
        self.slots = [WorkerSlot(i, p) for i, p in enumerate(privates)]
        self._install_signals()
        log.info("supervisor_start", port=port, workers=self.s.workers, model=self.s.model, version=self.version)
        for slot in self.slots:
            self._spawn(slot)
        try:
            return self._loop()
        finally:
            self._kill_all(signal.SIGKILL)
            exporter.close()

    def _install_signals(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        signal.set_wakeup_fd(self._wake_w)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP):
            signal.signal(sig, lambda *_: None)  # the wakeup fd carries the signal number

    def _spawn(self, slot: WorkerSlot) -> None:
        parent_end, child_end = pair()
        sys.stdout.flush()
        sys.stderr.flush()
        spec = worker.WorkerSpec(slot.slot, slot.private_port, self.version, os.getpid())
        pid = os.fork()
        if pid == 0:  # child
            code: int = ExitCode.WORKERS_FAILED
            try:
                parent_end.close()
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_DFL)
                os.close(self._wake_r)
                os.close(self._wake_w)
                for other in self.slots:
                    if other.channel is not None:
                        other.channel.close()
                code = worker.run(self.s, spec, Channel(child_end))
            except BaseException:
                log.exception("worker_crashed", slot=slot.slot)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        child_end.close()
        slot.pid, slot.channel, slot.ready, slot.restart_at = pid, Channel(parent_end), False, None
        log.info("worker_start", slot=slot.slot, worker_pid=pid, version=self.version)

    # -- loop ------------------------------------------------------------------------------------

    def _loop(self) -> int:
        watch_stdin = self.s.exit_on_stdin_eof
        while True:
            now = time.monotonic()
            if self.stopping and (all(s.pid == 0 for s in self.slots) or now > self.stop_deadline):
                if any(s.pid for s in self.slots):
                    log.warning("workers_killed_after_grace")
                log.info("supervisor_exit", code=int(self.exit_code))
                return int(self.exit_code)
            fds: list[Any] = [self._wake_r] + [s.channel for s in self.slots if s.channel is not None]
            if watch_stdin:
                fds.append(sys.stdin)
            readable, _, _ = select.select(fds, [], [], TICK)
            for r in readable:
                if r is self._wake_r or r == self._wake_r:
                    self._signals()
                elif r is sys.stdin:
                    if not os.read(sys.stdin.fileno(), 4096):
                        watch_stdin = False
                        self._stop("stdin closed", fast=True)
                else:
                    self._message(r)
            self._timers(time.monotonic())

    def _signals(self) -> None:
        try:
            data = os.read(self._wake_r, 512)
        except BlockingIOError:
            return
        for signum in data:
            if signum in (signal.SIGTERM, signal.SIGINT):
                self._stop(signal.Signals(signum).name)
            elif signum == signal.SIGHUP:
                self._request_reload(None, "latest")
        self._reap()

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for slot in self.slots:
                if slot.pid == pid:
                    self._worker_exited(slot, status)
            metrics.process_dead(pid)

    def _worker_exited(self, slot: WorkerSlot, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        was_ready = slot.ready
        if slot.channel is not None:
            slot.channel.close()
        slot.pid, slot.channel, slot.ready = 0, None, False
        if self.txn is not None and slot.slot in self.txn.awaiting:
            self.txn.awaiting.discard(slot.slot)
            if self.txn.phase == "prepare":
                self.txn.errors.append(f"worker {slot.slot} exited during load")
            self._advance_txn()
        if self.stopping:
            return
        log.warning("worker_exit", slot=slot.slot, code=code, was_ready=was_ready)
        slot.boot_failures = 0 if was_ready else slot.boot_failures + 1
        if slot.boot_failures >= MAX_BOOT_FAILURES:
            log.error("worker_cannot_boot", slot=slot.slot, failures=slot.boot_failures)
            self.exit_code = ExitCode.WORKERS_FAILED
            self._stop("a worker cannot boot", fast=True)
            return
        backoff = 0.0 if was_ready else min(MAX_BACKOFF, 0.1 * 2 ** slot.boot_failures)
        slot.restart_at = time.monotonic() + backoff
        self._broadcast_topology()

    def _timers(self, now: float) -> None:
        if self.stopping:
            return
        for slot in self.slots:
            if slot.pid == 0 and slot.restart_at is not None and now >= slot.restart_at:
                self._spawn(slot)
        if self.s.parent_pid is not None and not _alive(self.s.parent_pid):
            self._stop("parent process gone", fast=True)
            return
        if self.s.idle_shutdown_after and self.announced and now - self.last_activity > self.s.idle_shutdown_after:
            self._stop("idle", fast=False)
            return
        if now >= self.next_watch:
            self.next_watch = now + self.s.watch
            latest = source.latest_version(self.s.model_root / self.s.model)
            if latest is not None and latest > self.version and latest not in self.failed_versions \
                    and self.txn is None and not self.reload_queue:
                log.info("watch_found_version", version=latest)
                self._request_reload(None, str(latest))
        if self.txn is not None and now - self.txn.started > TXN_TIMEOUT:
            self.txn.errors.append("reload timed out")
            self.txn.awaiting.clear()
            self._advance_txn()

    # -- messages from workers ---------------------------------------------------------------------

    def _message(self, channel: Channel) -> None:
        slot = next((s for s in self.slots if s.channel is channel), None)
        message = channel.recv()
        if slot is None:
            return
        if message is None:
            # The worker closed its end; reaping it happens on SIGCHLD.
            slot.channel = None
            channel.close()
            self._reap()
            return
        kind = message.get("type")
        if kind == "ready":
            self._ready(slot, message)
        elif kind == "activity":
            if message["calls"] != slot.calls:
                slot.calls = message["calls"]
                self.last_activity = time.monotonic()
        elif kind == "reload":
            self.last_activity = time.monotonic()
            self._request_reload((slot.slot, message["id"]), message["version"])
        elif kind in ("prepared", "committed"):
            self._txn_reply(slot, message)
        elif kind == "failed":
            log.error("worker_failed", slot=slot.slot, error=message.get("error"))

    def _ready(self, slot: WorkerSlot, message: dict[str, Any]) -> None:
        slot.ready, slot.version, slot.address = True, message["version"], message["address"]
        slot.boot_failures = 0
        if slot.version != self.version and (self.txn is None or self.txn.phase == "commit"):
            # It booted while a reload committed: bring it to the serving version.
            self._send(slot, {"type": "switch", "version": self.version})
        self._broadcast_topology()
        if not self.announced and all(s.ready for s in self.slots):
            self.announced = True
            self.last_activity = time.monotonic()
            line = {
                "event": "ready", "port": self.s.port, "pid": os.getpid(), "workers": len(self.slots),
                "model": self.s.model, "version": self.version, "address": self.s.shared_address,
                "worker_addresses": [s.address for s in self.slots],
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
        workers = [{"pid": s.pid, "address": s.address} for s in self.slots if s.ready]
        for s in self.slots:
            if s.ready:
                self._send(s, {"type": "workers", "workers": workers})

    def _send(self, slot: WorkerSlot, message: dict[str, Any]) -> bool:
        return slot.channel is not None and slot.channel.send(message)

    # -- reloads -----------------------------------------------------------------------------------

    def _request_reload(self, requester: tuple[int, int] | None, version: str) -> None:
        self.reload_queue.append((requester, version))
        if self.txn is None:
            self._next_reload()

    def _reply(self, requester: tuple[int, int] | None, **fields: Any) -> None:
        if requester is None:
            return
        slot = self.slots[requester[0]]
        self._send(slot, {"type": "reload_result", "id": requester[1], **fields})

    def _fail(self, requester: tuple[int, int] | None, code: str, message: str, field: str | None = None) -> None:
        log.warning("reload_failed", code=code, error=message)
        metrics.reload_finished(code)
        self._reply(requester, ok=False, code=code, message=message, field=field)

    def _next_reload(self) -> None:
        while self.txn is None and self.reload_queue and not self.stopping:
            requester, wanted = self.reload_queue.popleft()
            model_dir = self.s.model_root / self.s.model
            if wanted == "latest":
                latest = source.latest_version(model_dir)
                if latest is None:
                    self._fail(requester, "NOT_FOUND", "no complete version exists", "version")
                    continue
                version = latest
            elif not (wanted.isascii() and wanted.isdigit()):
                self._fail(requester, "INVALID_ARGUMENT", f"must be a version number or 'latest', got {wanted!r}",
                           "version")
                continue
            else:
                version = int(wanted)
                if version not in source.list_versions(model_dir):
                    self._fail(requester, "NOT_FOUND", f"model {self.s.model!r} has no complete version {version}",
                               "version")
                    continue
            ready = [s for s in self.slots if s.ready]
            if version == self.version and all(s.version == version for s in ready):
                self._reply(requester, ok=True, old=version, new=version, load_seconds=0.0, workers=len(ready))
                continue
            try:
                loader.verify(source.version_dir(self.s.model_root, self.s.model, version))
            except ArtifactError as e:
                self.failed_versions.add(version)
                self._fail(requester, "FAILED_PRECONDITION", f"version {version} cannot be loaded: {e}", "version")
                continue
            if not ready:
                self._fail(requester, "UNAVAILABLE", "no worker is serving")
                continue
            self.txn_ids += 1
            self.txn = Txn(self.txn_ids, version, requester, self.version, awaiting={s.slot for s in ready})
            log.info("reload_start", txn=self.txn.id, version=version, old_version=self.version)
            for s in ready:
                if not self._send(s, {"type": "prepare", "txn": self.txn.id, "version": version}):
                    self.txn.awaiting.discard(s.slot)
                    self.txn.errors.append(f"worker {s.slot} unreachable")
            self._advance_txn()

    def _txn_reply(self, slot: WorkerSlot, message: dict[str, Any]) -> None:
        if message["type"] == "committed":
            slot.version = message["version"]
        txn = self.txn
        if txn is None or message.get("txn") != txn.id or slot.slot not in txn.awaiting:
            return
        txn.awaiting.discard(slot.slot)
        if message["type"] == "prepared":
            if message["ok"]:
                txn.load_seconds = max(txn.load_seconds, float(message["load_seconds"]))
            else:
                txn.errors.append(f"worker {slot.slot}: {message['error']}")
        self._advance_txn()

    def _advance_txn(self) -> None:
        txn = self.txn
        if txn is None or txn.awaiting:
            return
        if txn.phase == "prepare" and txn.errors:
            for s in self.slots:
                self._send(s, {"type": "abort", "version": txn.version})
            self.failed_versions.add(txn.version)
            self.txn = None
            self._fail(txn.requester, "FAILED_PRECONDITION",
                       f"version {txn.version} was not loaded by every worker; still serving "
                       f"{txn.old_version}: {'; '.join(txn.errors)}", "version")
        elif txn.phase == "prepare":
            txn.phase = "commit"
            # From here on, a restarted worker boots with the new version.
            self.version = txn.version
            ready = [s for s in self.slots if s.ready]
            txn.awaiting = {s.slot for s in ready if self._send(s, {"type": "commit", "txn": txn.id,
                                                                    "version": txn.version})}
            if txn.awaiting:
                return
            self._advance_txn()
            return
        else:
            self.txn = None
            metrics.reload_finished("ok", time.monotonic() - txn.started)
            workers = sum(1 for s in self.slots if s.ready and s.version == txn.version)
            log.info("reload_done", txn=txn.id, version=txn.version, old_version=txn.old_version,
                     load_seconds=round(txn.load_seconds, 4), workers=workers)
            self._reply(txn.requester, ok=True, old=txn.old_version, new=txn.version,
                        load_seconds=txn.load_seconds, workers=workers)
        self._next_reload()

    # -- stop ----------------------------------------------------------------------------------------

    def _stop(self, reason: str, *, fast: bool = False) -> None:
        if self.stopping:
            return
        self.stopping = True
        grace = min(self.s.grace, 1.0) if fast else self.s.grace
        self.stop_deadline = time.monotonic() + grace + 2.0
        log.info("supervisor_stopping", reason=reason, grace=grace)
        if self.txn is not None:
            self._fail(self.txn.requester, "UNAVAILABLE", "the sidecar is shutting down")
        for requester, _ in self.reload_queue:
            self._fail(requester, "UNAVAILABLE", "the sidecar is shutting down")
        self.reload_queue.clear()
        for slot in self.slots:
            if slot.pid and not self._send(slot, {"type": "shutdown", "fast": fast}):
                _signal(slot.pid, signal.SIGTERM)

    def _kill_all(self, sig: int) -> None:
        for slot in self.slots:
            if slot.pid:
                _signal(slot.pid, sig)
        deadline = time.monotonic() + 2.0
        while any(s.pid for s in self.slots) and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.01)


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


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
