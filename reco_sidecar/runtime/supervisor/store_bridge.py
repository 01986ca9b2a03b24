"""The supervisor's side of the follower process: starts it, reads its JSON lines without
ever blocking (its stdout joins the supervisor's select), forwards explicit reloads and the
serving version, and restarts it if it dies. Only "a version is in the local cache" comes
back into the supervisor, which then runs its usual all-or-nothing reload."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reco_sidecar.common import logs

log = logs.get(__name__)
RESTART_AFTER = 1.0
INITIAL_TIMEOUT = 600.0

Requester = Any  # whatever the supervisor uses to route a reply; None for the watch


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
    available: Callable[[Requester, int], None]
    refused: Callable[[Requester, str, str], None]
    status: Callable[[dict[str, Any]], None]


class StoreLink:
    def __init__(self, config: FollowerConfig) -> None:
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._requests: dict[int, Requester] = {}
        self._next_id = 0
        self._restart_at: float | None = None
        self._serving: int | None = None
        self.last_status: dict[str, Any] | None = None
        self.initial: dict[str, Any] | None = None

    # -- process -----------------------------------------------------------------------------------

    def start(self) -> None:
        c = self.config
        args = [sys.executable, "-m", "reco_sidecar.runtime.store_follower", "--store", c.store, "--model", c.model,
                "--cache", str(c.cache), "--keep", str(c.keep), "--watch", str(c.watch),
                "--parent-pid", str(os.getpid()), "--log-level", c.log_level, "--log-format", c.log_format]
        if c.endpoint_url:
            args += ["--endpoint-url", c.endpoint_url]
        if self._serving is not None:
            args += ["--serving", str(self._serving)]
        # stderr is the sidecar's own: the follower's log lines join the others.
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        self._buffer = b""
        self._restart_at = None
        log.info("store_follower_start", follower_pid=self.proc.pid, store=c.store, watch=c.watch)
        if self._serving is not None:
            self.serving(self._serving)

    def wait_initial(self, timeout: float = INITIAL_TIMEOUT) -> dict[str, Any]:
        """Blocks until the first sync's answer (before any worker exists, so blocking is fine)."""
        import select

        deadline = time.monotonic() + timeout
        while self.initial is None:
            if self.proc is None or self.proc.stdout is None:
                raise RuntimeError("the store follower is not running")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the store follower gave no answer in {timeout:.0f} s")
            select.select([self.proc.stdout], [], [], min(left, 1.0))
            if self._read_lines(Handlers(lambda *_: None, lambda *_: None, self._keep_status)) is None:
                raise RuntimeError(f"the store follower exited with {self.proc.wait()}")
        return self.initial

    def fds(self) -> list[int]:
        """The pipe ends a forked child must close (workers, the verifier)."""
        if self.proc is None:
            return []
        return [p.fileno() for p in (self.proc.stdin, self.proc.stdout) if p is not None]

    def fileno(self) -> int:
        """For select(); -1 while the process is down (waiting for its restart)."""
        if self.proc is None or self.proc.stdout is None:
            return -1
        return self.proc.stdout.fileno()

    def readable(self, handlers: Handlers) -> None:
        if self._read_lines(handlers) is None:
            code = self.proc.wait() if self.proc is not None else None
            log.error("store_follower_exited", code=code, restart_in=RESTART_AFTER)
            for requester in self._requests.values():
                handlers.refused(requester, "UNAVAILABLE", "the store follower exited; try again")
            self._requests.clear()
            self._close_pipes()
            self.proc = None
            self._restart_at = time.monotonic() + RESTART_AFTER

    def tick(self, now: float) -> None:
        if self.proc is None and self._restart_at is not None and now >= self._restart_at:
            self.start()

    def close(self) -> None:
        if self.proc is None:
            return
        self._close_pipes()
        try:
            self.proc.terminate()
            self.proc.wait(5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def _close_pipes(self) -> None:
        if self.proc is None:
            return
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    # -- messages ----------------------------------------------------------------------------------

    def _keep_status(self, status: dict[str, Any]) -> None:
        self.last_status = status

    def _read_lines(self, handlers: Handlers) -> bool | None:
        """Handles every complete line; None at end of file (the process is gone)."""
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            try:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
            except BlockingIOError:
                break
            if not chunk:
                return None
            self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            self._dispatch(message, handlers)
        return True

    def _dispatch(self, message: dict[str, Any], handlers: Handlers) -> None:
        kind = message.get("type")
        if kind == "status":
            self.last_status = message["status"]
            handlers.status(message["status"])
            return
        if message.get("id") == "initial":
            if self.initial is None:
                self.initial = message  # serve's first version, read by wait_initial
                return
            # A restarted follower's first look: the target it found counts as the watch's.
            message = {**message, "id": None}
        requester = self._requests.pop(message["id"], None) if isinstance(message.get("id"), int) else None
        if kind == "available":
            handlers.available(requester, int(message["version"]))
        elif kind == "refused" and requester is not None:
            handlers.refused(requester, str(message["code"]), str(message["message"]))

    def _send(self, message: dict[str, Any]) -> bool:
        if self.proc is None or self.proc.stdin is None:
            return False
        try:
            self.proc.stdin.write(json.dumps(message).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return False
        return True

    def request(self, requester: Requester, version: str) -> bool:
        """Asks for `version` ('latest': the store's target) in the cache; the answer comes back
        through Handlers.available or .refused with this requester. False: follower down."""
        self._next_id += 1
        self._requests[self._next_id] = requester
        if not self._send({"type": "sync", "id": self._next_id, "version": version}):
            self._requests.pop(self._next_id, None)
            return False
        return True

    def serving(self, version: int) -> None:
        self._serving = version
        self._send({"type": "serving", "version": version})
