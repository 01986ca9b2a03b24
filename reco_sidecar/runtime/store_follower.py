"""The follower's process: `python -m reco_sidecar.runtime.store_follower …`, started by the
supervisor (supervisor/store_bridge.py). Downloads run here, so they never block the
supervisor's loop, and no thread of ours lives in a process that forks workers.

It talks to the supervisor over the channel whose descriptor `--channel-fd` names, in the
wire's typed messages: `Sync` (bring a version into the cache) and `Serving` (protect it)
in; `Available`, `NotAvailable` and `StoreStatus` out. Its first message answers the
initial sync with id `wire.INITIAL`; a new target the watch finds is announced with id
`wire.WATCH`. The process exits when the channel closes or the supervisor dies."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import pathlib
import queue
import signal
import socket
import sys
import threading
import time

from reco_sidecar.common import logs
from reco_sidecar.common.versions import LATEST
from reco_sidecar.runtime import wire
from reco_sidecar.runtime.channel import Channel
from reco_sidecar.store import location
from reco_sidecar.store.client import make_client
from reco_sidecar.store.follower import Follower, Outcome
from reco_sidecar.store.remote import RemoteModel

log = logs.get(__name__)
PR_SET_PDEATHSIG = 1


def _reply(channel: Channel, request_id: int, outcome: Outcome) -> None:
    if outcome.version is not None:
        channel.send(wire.Available(request_id, outcome.version))
    else:
        assert outcome.kind is not None
        channel.send(wire.NotAvailable(request_id, outcome.kind, outcome.message))


def _read_commands(channel: Channel, commands: queue.SimpleQueue[wire.ToFollower | None]) -> None:
    while True:
        try:
            command = channel.recv(wire.decode_to_follower)
        except ValueError as e:
            log.error("control_message_invalid", error=str(e))
            continue
        commands.put(command)
        if command is None:
            return


def _die_with_parent(parent_pid: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:
        sys.exit(0)


def serve_forever(follower: Follower, channel: Channel, watch: float) -> int:
    commands: queue.SimpleQueue[wire.ToFollower | None] = queue.SimpleQueue()
    threading.Thread(target=_read_commands, args=(channel, commands), daemon=True, name="commands").start()
    first = follower.sync(None, explicit=True)
    _reply(channel, wire.INITIAL, first)
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
                _reply(channel, wire.WATCH, outcome)
            continue
        match command:
            case None:
                return 0
            case wire.Sync(request_id, spec):
                outcome = follower.sync(None if spec is LATEST else spec, explicit=True)
                if spec is LATEST and outcome.version is not None:
                    announced = outcome.version
                _reply(channel, request_id, outcome)
            case wire.Serving(version):
                follower.set_serving(version)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="reco_sidecar.runtime.store_follower")
    p.add_argument("--store", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--cache", type=pathlib.Path, required=True)
    p.add_argument("--keep", type=int, required=True)
    p.add_argument("--watch", type=float, default=0.0)
    p.add_argument("--endpoint-url", default=None)
    p.add_argument("--parent-pid", type=int, required=True)
    p.add_argument("--channel-fd", type=int, required=True)
    p.add_argument("--log-level", default="info")
    p.add_argument("--log-format", default="json")
    args = p.parse_args(argv)
    _die_with_parent(args.parent_pid)
    logs.configure(args.log_level, args.log_format)
    channel = Channel(socket.socket(fileno=args.channel_fd))
    remote = RemoteModel(make_client(args.endpoint_url), location.parse(args.store), args.model)
    follower = Follower(remote, args.cache, args.keep, channel.send)
    return serve_forever(follower, channel, args.watch)


if __name__ == "__main__":
    sys.exit(main())
