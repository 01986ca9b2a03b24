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
from typing import Any

from reco_sidecar.common import logs
from reco_sidecar.store import location
from reco_sidecar.store.client import make_client
from reco_sidecar.store.follower import Follower, Outcome
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


def _read_commands(commands: queue.SimpleQueue[dict[str, Any] | None]) -> None:
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


def serve_forever(follower: Follower, watch: float) -> int:
    commands: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
    threading.Thread(target=_read_commands, args=(commands,), daemon=True, name="commands").start()
    first = follower.sync(None, explicit=True)
    _reply("initial", first)
    announced = first.version
    next_look = time.monotonic() + watch if watch else float("inf")
    while True:
        timeout = max(0.0, next_look - time.monotonic())
        try:
            command = commands.get(timeout=None if timeout == float("inf") else timeout)
        except queue.Empty:
            next_look = time.monotonic() + watch
            outcome = follower.sync(None, explicit=False)
            # Announce a target once; the supervisor runs the reload (and remembers failures).
            if outcome.version is not None and outcome.version != announced:
                announced = outcome.version
                _reply(None, outcome)
            continue
        if command is None:
            return 0
        kind = command.get("type")
        if kind == "sync":
            wanted = str(command.get("version") or "latest")
            if wanted != "latest" and not (wanted.isascii() and wanted.isdigit()):
                _reply(command.get("id"), Outcome(None, "INVALID_ARGUMENT", f"not a version number: {wanted!r}"))
                continue
            outcome = follower.sync(None if wanted == "latest" else int(wanted), explicit=True)
            if wanted == "latest" and outcome.version is not None:
                announced = outcome.version
            _reply(command.get("id"), outcome)
        elif kind == "serving":
            follower.set_serving(int(command["version"]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="reco_sidecar.runtime.store_follower")
    p.add_argument("--store", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--cache", type=pathlib.Path, required=True)
    p.add_argument("--keep", type=int, required=True)
    p.add_argument("--watch", type=float, default=0.0)
    p.add_argument("--endpoint-url", default=None)
    p.add_argument("--parent-pid", type=int, required=True)
    p.add_argument("--log-level", default="info")
    p.add_argument("--log-format", default="json")
    args = p.parse_args(argv)
    _die_with_parent(args.parent_pid)
    logs.configure(args.log_level, args.log_format)
    remote = RemoteModel(make_client(args.endpoint_url), location.parse(args.store), args.model)
    follower = Follower(remote, args.cache, args.keep, lambda status: emit({"type": "status", "status": status}))
    try:
        return serve_forever(follower, args.watch)
    except BrokenPipeError:  # the supervisor is gone
        return 0


if __name__ == "__main__":
    sys.exit(main())
