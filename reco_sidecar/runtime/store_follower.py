"""The follower's process: `python -m reco_sidecar.runtime.store_follower …`, started by the
supervisor. Downloads run here, so they never block the supervisor's loop, and no thread
of ours lives in a process that forks workers.

Protocol: JSON lines. From the supervisor on stdin: `{"type": "sync", "id": …, "version":
"latest" | "N"}` (an explicit Reload), `{"type": "serving", "version": N}` (protect it in the
cache). To the supervisor on stdout: `status` (the StoreStatus as a dict), `available`
(`version` is in the cache; `id` of the request or null for the watch), `refused` (`id`,
`code`, `message`). The first line after start answers the initial sync with `id` "initial".
The process exits when stdin closes or the supervisor dies."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import pathlib
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from reco_sidecar.common import logs
from reco_sidecar.store import cache, location
from reco_sidecar.store.client import make_client
from reco_sidecar.store.follower import Follower, Needs, Outcome
from reco_sidecar.store.remote import RemoteModel

log = logs.get(__name__)
PR_SET_PDEATHSIG = 1
_out_lock = threading.Lock()


def emit(message: dict[str, Any]) -> None:
    with _out_lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def _reply(request_id: Any, outcome: Outcome) -> None:
    if outcome.version is not None:
        emit({"type": "available", "id": request_id, "version": outcome.version})
    else:
        emit({"type": "refused", "id": request_id, "code": outcome.code, "message": outcome.message})


def _read_commands(commands: queue.SimpleQueue[Any]) -> None:
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(message, dict):
            commands.put(message)
    commands.put(None)


def _die_with_parent(parent_pid: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:
        sys.exit(0)


@dataclass(frozen=True)
class _Downloaded:
    """From the download thread to the loop: a download ended (error None: it is cached)."""

    version: int
    error: BaseException | None


class _Loop:
    """The follower's loop. Downloads run one at a time in a thread of their own; the loop keeps
    answering meanwhile, so a version already in the cache (a rollback, a Reload of a cached
    number, the store pointing back) is answered at once whatever download is under way."""

    def __init__(self, follower: Follower, watch: float) -> None:
        self.follower = follower
        self.watch = watch
        self.commands: queue.SimpleQueue[dict[str, Any] | _Downloaded | None] = queue.SimpleQueue()
        self.announced: int | None = None
        self.waiting: dict[int, list[Any]] = {}  # version -> ids of the requests waiting for it
        self.latest_ids: set[Any] = set()  # requests for the store's target: their answer is announced
        self.watched: int | None = None  # the store's target the watch is downloading
        self.running: int | None = None
        self.queued: list[int] = []

    def run(self) -> int:
        threading.Thread(target=_read_commands, args=(self.commands,), daemon=True, name="commands").start()
        first = self.follower.look(None, explicit=True)
        if isinstance(first, Needs) and cache.cached_versions(self.follower.model_dir):
            # A restart with a valid cache serves it at once; the target follows when downloaded.
            self.watched = first.version
            self._want(first.version)
            _reply("initial", Outcome(None, "UNAVAILABLE", f"version {first.version} is being downloaded"))
        else:
            self._answer("initial", first, latest=True)
        next_look = time.monotonic() + self.watch if self.watch else float("inf")
        while True:
            timeout = max(0.0, next_look - time.monotonic())
            try:
                item = self.commands.get(timeout=None if timeout == float("inf") else timeout)
            except queue.Empty:
                next_look = time.monotonic() + self.watch
                self._look()
                continue
            if item is None:
                return 0
            if isinstance(item, _Downloaded):
                self._downloaded(item)
            else:
                self._command(item)

    def _look(self) -> None:
        found = self.follower.look(None, explicit=False)
        if isinstance(found, Needs):
            self.watched = found.version
            self._want(found.version)
            return
        self.watched = None
        # Announce a target once; the supervisor runs the reload (and remembers failures).
        if found.version is not None and found.version != self.announced:
            self._announce(None, found)

    def _command(self, command: dict[str, Any]) -> None:
        kind = command.get("type")
        if kind == "sync":
            wanted = str(command.get("version") or "latest")
            if wanted != "latest" and not (wanted.isascii() and wanted.isdigit()):
                _reply(command.get("id"), Outcome(None, "INVALID_ARGUMENT", f"not a version number: {wanted!r}"))
                return
            found = self.follower.look(None if wanted == "latest" else int(wanted), explicit=True)
            self._answer(command.get("id"), found, latest=wanted == "latest")
        elif kind == "serving":
            self.follower.set_serving(int(command["version"]))

    def _answer(self, request_id: Any, found: Outcome | Needs, *, latest: bool) -> None:
        if isinstance(found, Needs):
            self.waiting.setdefault(found.version, []).append(request_id)
            if latest:
                self.latest_ids.add(request_id)
            self._want(found.version)
        elif latest and found.version is not None:
            self._announce(request_id, found)
        else:
            _reply(request_id, found)

    def _announce(self, request_id: Any, outcome: Outcome) -> None:
        self.announced = outcome.version
        _reply(request_id, outcome)

    def _downloaded(self, done: _Downloaded) -> None:
        self.running = None
        outcome = self.follower.finish(done.version, done.error)
        ids = self.waiting.pop(done.version, [])
        for request_id in ids:
            if request_id in self.latest_ids and outcome.version is not None:
                self._announce(request_id, outcome)
            else:
                _reply(request_id, outcome)
            self.latest_ids.discard(request_id)
        if (self.watched == done.version and outcome.version is not None and outcome.version != self.announced
                and self.follower.status.target_version == done.version):
            self._announce(None, outcome)
        if self.watched == done.version:
            self.watched = None
        self._start_next()

    def _want(self, version: int) -> None:
        if version != self.running and version not in self.queued:
            self.queued.append(version)
        self._start_next()

    def _start_next(self) -> None:
        if self.running is not None:
            return
        # A version nobody waits for any more (the target moved on) is not downloaded.
        self.queued = [v for v in self.queued if v in self.waiting or v == self.watched]
        if not self.queued:
            return
        self.running = self.queued.pop(0)
        threading.Thread(target=self._fetch, args=(self.running,), daemon=True, name="download").start()

    def _fetch(self, version: int) -> None:
        self.commands.put(_Downloaded(version, self.follower.fetch(version)))


def serve_forever(follower: Follower, watch: float) -> int:
    return _Loop(follower, watch).run()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="reco_sidecar.runtime.store_follower")
    p.add_argument("--store", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--cache", type=pathlib.Path, required=True)
    p.add_argument("--keep", type=int, required=True)
    p.add_argument("--watch", type=float, default=0.0)
    p.add_argument("--endpoint-url", default=None)
    p.add_argument("--parent-pid", type=int, required=True)
    # The version the supervisor serves, when the follower is restarted: never evicted as stale.
    p.add_argument("--serving", type=int, default=None)
    p.add_argument("--log-level", default="info")
    p.add_argument("--log-format", default="json")
    args = p.parse_args(argv)
    _die_with_parent(args.parent_pid)
    logs.configure(args.log_level, args.log_format)
    remote = RemoteModel(make_client(args.endpoint_url), location.parse(args.store), args.model)
    follower = Follower(remote, args.cache, args.keep, lambda status: emit({"type": "status", "status": status}))
    follower.serving = args.serving
    try:
        return serve_forever(follower, args.watch)
    except BrokenPipeError:  # the supervisor is gone
        return 0


if __name__ == "__main__":
    sys.exit(main())
