"""The supervisor's side of the store follower process (runtime/store_follower.py): starts
it, reads its messages without ever blocking (its channel joins the supervisor's select),
forwards explicit reloads and the serving version, and restarts it if it dies. Only "a
version is in the local cache" comes back into the supervisor, which then runs its usual
all-or-nothing reload."""

from __future__ import annotations

import os
import pathlib
import select
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from reco_sidecar.common import logs
from reco_sidecar.common.errors import ErrorKind
from reco_sidecar.common.versions import VersionSpec
from reco_sidecar.runtime import wire
from reco_sidecar.runtime.channel import Channel, pair
from reco_sidecar.runtime.supervisor.transaction import Requester
from reco_sidecar.store.status import StoreStatus

log = logs.get(__name__)
RESTART_AFTER = 1.0
INITIAL_TIMEOUT = 600.0


@dataclass(frozen=True)
class FollowerConfig:
    store: str
    model: str
    cache: pathlib.Path
    keep: int
    watch: float
    endpoint_url: str | None
    log_level: str
    log_format: str


@dataclass(frozen=True)
class Handlers:
    """Where the follower's answers go; the requester is None for the follower's own watch."""

    available: Callable[[Requester | None, int], None]
    refused: Callable[[Requester | None, ErrorKind, str], None]
    status: Callable[[StoreStatus], None]


class StoreBridge:
    def __init__(self, config: FollowerConfig) -> None:
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None
        self._channel: Channel | None = None
        self._requests: dict[int, Requester | None] = {}
        self._next_id = wire.WATCH
        self._restart_at: float | None = None
        self._serving: int | None = None
        self.last_status: StoreStatus | None = None
        self.initial: wire.Available | wire.NotAvailable | None = None

    # -- process -----------------------------------------------------------------------------------

    def start(self) -> None:
        c = self.config
        mine, theirs = pair()
        args = [sys.executable, "-m", "reco_sidecar.runtime.store_follower", "--store", c.store, "--model", c.model,
                "--cache", str(c.cache), "--keep", str(c.keep), "--watch", str(c.watch),
                "--parent-pid", str(os.getpid()), "--channel-fd", str(theirs.fileno()),
                "--log-level", c.log_level, "--log-format", c.log_format]
        if c.endpoint_url:
            args += ["--endpoint-url", c.endpoint_url]
        if self._serving is not None:
            args += ["--serving", str(self._serving)]
        # stdout and stderr are the sidecar's own: the follower's log lines join the others.
        try:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(),))
        finally:
            theirs.close()
        self._channel = Channel(mine)
        self._restart_at = None
        log.info("store_follower_start", follower_pid=self.proc.pid, store=c.store, watch=c.watch)
        if self._serving is not None:
            self.serving(self._serving)

    def wait_initial(self, timeout: float = INITIAL_TIMEOUT) -> wire.Available | wire.NotAvailable:
        """Blocks until the first sync's answer (before any worker exists, so blocking is fine)."""
        deadline = time.monotonic() + timeout
        keep = Handlers(lambda *_: None, lambda *_: None, lambda _: None)
        while self.initial is None:
            if self._channel is None or self.proc is None:
                raise RuntimeError("the store follower is not running")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the store follower gave no answer in {timeout:.0f} s")
            if select.select([self._channel], [], [], min(left, 1.0))[0] and not self._read_one(keep):
                raise RuntimeError(f"the store follower exited with {self.proc.wait()}")
        return self.initial

    def fds(self) -> list[int]:
        """What a forked child must close (workers, the verifier)."""
        return [self._channel.fileno()] if self._channel is not None else []

    def fileno(self) -> int:
        """For select(); -1 while the process is down (waiting for its restart)."""
        return self._channel.fileno() if self._channel is not None else -1

    def readable(self, handlers: Handlers) -> None:
        if self._read_one(handlers):
            return
        code = self.proc.wait() if self.proc is not None else None
        log.error("store_follower_exited", code=code, restart_in=RESTART_AFTER)
        for requester in self._requests.values():
            handlers.refused(requester, ErrorKind.UNAVAILABLE, "the store follower exited; try again")
        self._requests.clear()
        self._drop()
        self._restart_at = time.monotonic() + RESTART_AFTER

    def tick(self, now: float) -> None:
        if self.proc is None and self._restart_at is not None and now >= self._restart_at:
            self.start()

    def close(self) -> None:
        if self.proc is None:
            return
        proc = self.proc
        self._drop()
        try:
            proc.terminate()
            proc.wait(5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait(5)

    def _drop(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = None
        self.proc = None

    # -- messages ----------------------------------------------------------------------------------

    def _read_one(self, handlers: Handlers) -> bool:
        """Handles one message; False at end of file or a malformed message (the process is
        gone, or must be: it is restarted either way)."""
        assert self._channel is not None
        try:
            message = self._channel.recv(wire.decode_from_follower)
        except ValueError as e:
            log.error("control_message_invalid", peer="store_follower", error=str(e))
            if self.proc is not None:
                self.proc.kill()
            return False
        if message is None:
            return False
        match message:
            case StoreStatus():
                self.last_status = message
                handlers.status(message)
            case wire.Available(request_id, version):
                if request_id == wire.INITIAL and self.initial is None:
                    self.initial = message  # serve's first version, read by wait_initial
                    return True
                # A restarted follower's first look counts as the watch's.
                handlers.available(self._requests.pop(request_id, None), version)
            case wire.NotAvailable(request_id, kind, text):
                if request_id == wire.INITIAL and self.initial is None:
                    self.initial = message
                    return True
                requester = self._requests.pop(request_id, None)
                if requester is not None:  # the watch's own failures are in the status
                    handlers.refused(requester, kind, text)
        return True

    def request(self, requester: Requester | None, spec: VersionSpec) -> bool:
        """Asks for `spec` (`latest`: the store's target) in the cache; the answer comes back
        through Handlers.available or .refused with this requester. False: follower down."""
        self._next_id += 1
        self._requests[self._next_id] = requester
        if self._channel is None or not self._channel.send(wire.Sync(self._next_id, spec)):
            self._requests.pop(self._next_id, None)
            return False
        return True

    def serving(self, version: int) -> None:
        self._serving = version
        if self._channel is not None:
            self._channel.send(wire.Serving(version))
