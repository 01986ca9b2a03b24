"""The supervisor's handle on the learner process: the listening socket bound before any
fork (workers connect to it whether or not the learner is up yet), fork, restart after an
exit, the served version sent on every change, and the heartbeat deadline (a learner that
stops beating for --worker-timeout is killed, and restarted like any that exits)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import sys
from collections.abc import Callable

from reco_sidecar.common import logs
from reco_sidecar.common.exit_codes import ExitCode
from reco_sidecar.runtime import wire as m
from reco_sidecar.runtime.channel import Channel, pair
from reco_sidecar.runtime.learner.framing import address
from reco_sidecar.serving import metrics
from reco_sidecar.settings import ServeSettings

log = logs.get(__name__)
MAX_BACKOFF = 5.0


class OnlineDirBusy(Exception):
    pass


class LearnerHandle:
    def __init__(self, settings: ServeSettings) -> None:
        self.s = settings
        # One sidecar per directory: two learners appending to one journal would interleave.
        # Held for the supervisor's life; the kernel lets go of it whatever ends the process.
        settings.online_path.mkdir(parents=True, exist_ok=True)
        self._lock = os.open(settings.online_path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            raise OnlineDirBusy(f"--online-dir {settings.online_path} is in use by another sidecar") from None
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(address(os.getpid()))
        self.listener.listen(512)
        self.pid = 0
        self.channel: Channel | None = None
        self.version = 0
        self.failures = 0
        self.restart_at: float | None = None
        self.last_beat = 0.0
        # Why the supervisor killed it, if it did (so its exit reads as a timeout, not a crash).
        self.killed_for = ""

    def fds(self) -> list[int]:
        """What a forked worker closes: it reaches the learner by connecting, not through these."""
        return [self.listener.fileno(), self._lock, *([self.channel.fileno()] if self.channel is not None else [])]

    def spawn(self, version: int, close_in_child: list[int], now: float) -> None:
        self.version = version
        parent_end, child_end = pair()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # child
            code: int = ExitCode.WORKERS_FAILED
            try:
                parent_end.close()
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_DFL)
                for fd in close_in_child:
                    if fd not in (self.listener.fileno(), self._lock):
                        with contextlib.suppress(OSError):
                            os.close(fd)
                from reco_sidecar.runtime.learner import process

                code = process.run(self.s, self.listener, Channel(child_end), version)
            except BaseException:
                log.exception("online_learner_crashed")
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        child_end.close()
        self.pid, self.channel, self.restart_at = pid, Channel(parent_end), None
        self._started = self.last_beat = now
        self.killed_for = ""
        log.info("online_learner_start", learner_pid=pid, version=version)

    def preparing(self, version: int) -> None:
        """A reload of the default model to `version` began."""
        if self.channel is not None and version != self.version:
            self.channel.send(m.ServeVersion(self.s.default_model, version, False))

    def serving(self, version: int) -> None:
        """`version` of the default model serves now (a reload ended, either way)."""
        self.version = version
        if self.channel is not None:
            self.channel.send(m.ServeVersion(self.s.default_model, version, True))

    def exited(self, pid: int, status: int, now: float, *, restart: bool) -> bool:
        """True when `pid` was the learner (restarted after a backoff unless stopping)."""
        if not pid or pid != self.pid:
            return False
        if self.channel is not None:
            self.channel.close()
        self.pid, self.channel = 0, None
        # One that ran a while is restarted at once; one that keeps failing, ever more slowly.
        self.failures = 0 if now - self._started > 10.0 else self.failures + 1
        log.warning("online_learner_exit", code=os.waitstatus_to_exitcode(status), failures=self.failures,
                    killed_for=self.killed_for or None)
        if restart:
            self.restart_at = now + min(MAX_BACKOFF, 0.1 * 2 ** self.failures) if self.failures else now
        return True

    def readable(self, now: float) -> None:
        """A message on the learner's channel: a heartbeat, or EOF (its exit is reaped on SIGCHLD)."""
        if self.channel is None:
            return
        try:
            message = self.channel.recv(m.decode_learner_to_supervisor)
        except ValueError as e:
            log.error("online_message_invalid", error=str(e))
            self.kill(f"sent an invalid control message: {e}")
            return
        if message is None:
            self.channel.close()
            self.channel = None
            return
        self.last_beat = now

    def tick(self, now: float, timeout: float, version: Callable[[], int],
             close_in_child: Callable[[], list[int]]) -> None:
        """The supervisor's clock: a restart that is due, or a learner whose heartbeat is later
        than `timeout`, killed (and restarted like any that exits)."""
        if self.due(now):
            self.spawn(version(), close_in_child(), now)
        elif self.overdue(now, timeout):
            reason = f"no heartbeat for {now - self.last_beat:.1f} s (--worker-timeout {timeout:g})"
            log.error("online_learner_timeout", learner_pid=self.pid, reason=reason)
            metrics.learner_timeout()
            self.kill(reason)

    def overdue(self, now: float, timeout: float) -> bool:
        return bool(self.pid) and not self.killed_for and now - self.last_beat > timeout

    def forgive(self, now: float) -> None:
        """The supervisor itself did not run: a late beat is waiting unread, not missing."""
        self.last_beat = max(self.last_beat, now)

    def kill(self, reason: str) -> None:
        if self.pid and not self.killed_for:
            self.killed_for = reason
            self.signal(signal.SIGKILL)

    def due(self, now: float) -> bool:
        return self.pid == 0 and self.restart_at is not None and now >= self.restart_at

    def signal(self, sig: int) -> None:
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
