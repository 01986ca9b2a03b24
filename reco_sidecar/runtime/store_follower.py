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
from dataclasses import dataclass

from reco_sidecar.common import logs
from reco_sidecar.common.errors import ErrorKind
from reco_sidecar.common.versions import LATEST
from reco_sidecar.runtime import wire
from reco_sidecar.runtime.channel import Channel
from reco_sidecar.store import cache, location
from reco_sidecar.store.client import make_client
from reco_sidecar.store.errors import StoreUnreachable
from reco_sidecar.store.follower import Follower, Needs, Outcome
from reco_sidecar.store.remote import RemoteModel

log = logs.get(__name__)
PR_SET_PDEATHSIG = 1


def _read_commands(channel: Channel, commands: queue.SimpleQueue[wire.ToFollower | _Downloaded | None]) -> None:
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


@dataclass(frozen=True)
class _Downloaded:
    """From the download thread to the loop: a download ended (error None: it is cached)."""

    version: int
    error: BaseException | None
    attempt: int


# A download that has brought no bytes for this long is given up by the loop. The download's
# own checks (store/paced.py) normally fire first; this catches what they cannot see, such as
# response headers that trickle in. Its thread is left to end by itself, its result ignored;
# while MAX_ABANDONED such threads live, no new download starts.
STUCK_AFTER = 45.0
MAX_ABANDONED = 2


class _Loop:
    """The follower's loop. Downloads run one at a time in a thread of their own; the loop keeps
    answering meanwhile, so a version already in the cache (a rollback, a Reload of a cached
    number, the store pointing back) is answered at once whatever download is under way."""

    def __init__(self, follower: Follower, channel: Channel, watch: float) -> None:
        self.follower = follower
        self.channel = channel
        self.watch = watch
        self.commands: queue.SimpleQueue[wire.ToFollower | _Downloaded | None] = queue.SimpleQueue()
        self.announced: int | None = None
        self.waiting: dict[int, list[int]] = {}  # version -> ids of the requests waiting for it
        self.latest_ids: set[int] = set()  # requests for the store's target: their answer is announced
        self.watched: int | None = None  # the store's target the watch is downloading
        self.running: int | None = None
        self.attempt = 0
        self.queued: list[int] = []
        self.abandoned: list[threading.Thread] = []
        self._thread: threading.Thread | None = None

    def run(self) -> int:
        threading.Thread(target=_read_commands, args=(self.channel, self.commands), daemon=True,
                         name="commands").start()
        first = self.follower.look(None, explicit=True)
        if isinstance(first, Needs) and cache.cached_versions(self.follower.model_dir):
            # A restart with a valid cache serves it at once; the target follows when downloaded.
            self.watched = first.version
            self._want(first.version)
            self._reply(wire.INITIAL, Outcome(None, ErrorKind.UNAVAILABLE,
                                              f"version {first.version} is being downloaded"))
        else:
            self._answer(wire.INITIAL, first, latest=True)
        next_look = time.monotonic() + self.watch if self.watch else float("inf")
        while True:
            wake = min(next_look, self.follower.progress_at + STUCK_AFTER if self.running is not None else next_look)
            timeout = max(0.0, wake - time.monotonic())
            try:
                item = self.commands.get(timeout=None if timeout == float("inf") else timeout)
            except queue.Empty:
                if self.running is not None and time.monotonic() >= self.follower.progress_at + STUCK_AFTER:
                    self._give_up()
                if time.monotonic() >= next_look:
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
        # Announce a target once per report of what the pool serves (see _command): the
        # supervisor runs the reload and remembers the versions that failed; one it aborted
        # for a worker's fault is offered again here. What already serves needs no offer.
        if found.version is not None and found.version not in (self.announced, self.follower.serving):
            self._announce(wire.WATCH, found)

    def _command(self, command: wire.ToFollower) -> None:
        match command:
            case wire.Sync(request_id, spec):
                found = self.follower.look(None if spec is LATEST else spec, explicit=True)
                self._answer(request_id, found, latest=spec is LATEST)
            case wire.Serving(version):
                # Sent after every reload the supervisor finishes, done or not: the target may
                # be announced again if the pool is not on it.
                self.announced = None
                self.follower.set_serving(version)

    def _reply(self, request_id: int, outcome: Outcome) -> None:
        if outcome.version is not None:
            self.channel.send(wire.Available(request_id, outcome.version))
        else:
            assert outcome.kind is not None
            self.channel.send(wire.NotAvailable(request_id, outcome.kind, outcome.message))

    def _answer(self, request_id: int, found: Outcome | Needs, *, latest: bool) -> None:
        if isinstance(found, Needs):
            self.waiting.setdefault(found.version, []).append(request_id)
            if latest:
                self.latest_ids.add(request_id)
            self._want(found.version)
        elif latest and found.version is not None:
            self._announce(request_id, found)
        else:
            self._reply(request_id, found)

    def _announce(self, request_id: int, outcome: Outcome) -> None:
        self.announced = outcome.version
        self._reply(request_id, outcome)

    def _give_up(self) -> None:
        assert self.running is not None and self._thread is not None
        self.abandoned.append(self._thread)
        self._downloaded(_Downloaded(self.running, StoreUnreachable(
            f"too slow: no bytes for {STUCK_AFTER:.0f} s"), self.attempt))

    def _downloaded(self, done: _Downloaded) -> None:
        if done.attempt != self.attempt or self.running is None:
            return  # a download given up on ended after all
        self.running = None
        outcome = self.follower.finish(done.version, done.error)
        ids = self.waiting.pop(done.version, [])
        for request_id in ids:
            if request_id in self.latest_ids and outcome.version is not None:
                self._announce(request_id, outcome)
            else:
                self._reply(request_id, outcome)
            self.latest_ids.discard(request_id)
        if (self.watched == done.version and outcome.version is not None and outcome.version != self.announced
                and self.follower.status.target_version == done.version):
            self._announce(wire.WATCH, outcome)
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
        self.abandoned = [t for t in self.abandoned if t.is_alive()]
        if len(self.abandoned) >= MAX_ABANDONED:
            stuck, self.queued = self.queued, []
            for version in stuck:  # answered now, not after the stuck ones end
                self.running, self.attempt = version, self.attempt + 1
                self._downloaded(_Downloaded(version, StoreUnreachable(
                    f"{len(self.abandoned)} downloads are stuck on a store too slow to answer"), self.attempt))
            return
        if not self.queued:
            return
        self.running, self.attempt = self.queued.pop(0), self.attempt + 1
        self.follower.progress_at = time.monotonic()
        self._thread = threading.Thread(target=self._fetch, args=(self.running, self.attempt), daemon=True,
                                        name="download")
        self._thread.start()

    def _fetch(self, version: int, attempt: int) -> None:
        self.commands.put(_Downloaded(version, self.follower.fetch(version), attempt))


def serve_forever(follower: Follower, channel: Channel, watch: float) -> int:
    return _Loop(follower, channel, watch).run()


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
    p.add_argument("--channel-fd", type=int, required=True)
    p.add_argument("--log-level", default="info")
    p.add_argument("--log-format", default="json")
    args = p.parse_args(argv)
    _die_with_parent(args.parent_pid)
    logs.configure(args.log_level, args.log_format)
    channel = Channel(socket.socket(fileno=args.channel_fd))
    remote = RemoteModel(make_client(args.endpoint_url), location.parse(args.store), args.model)
    follower = Follower(remote, args.cache, args.keep, channel.send)
    follower.serving = args.serving
    return serve_forever(follower, channel, args.watch)


if __name__ == "__main__":
    sys.exit(main())
