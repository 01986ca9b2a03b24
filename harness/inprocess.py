"""The sidecar's serving path inside this process, for what one worker does with a request
(checks, status codes, filters, paging, JSON-LD, fallbacks, streams): the grpc.aio server a
worker builds (reco_sidecar.serving.server), around a ModelRegistry loaded from a model root,
on a loopback port, reached through real gRPC channels. No process tree, so it starts in
well under a second.

The server runs on an event loop of its own in a background thread. Reload here is the
single-process reload (harness/local_reload.py); the reload transaction across workers,
signals, the supervisor and the metrics endpoint need processes: harness.sidecar.

Nothing here forks: tests in the same process may still start process trees with subprocess
(fork+exec), but never os.fork() without exec while gRPC objects exist (grpc/grpc#16001).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pathlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from harness.local_reload import LocalReloader
from reco_sidecar import settings as serve_settings
from reco_sidecar.artifact import loader
from reco_sidecar.commands.serve import initial_version
from reco_sidecar.gen.reco.v1 import reco_pb2_grpc
from reco_sidecar.manager.manager import ModelManager
from reco_sidecar.manager.registry import ModelRegistry
from reco_sidecar.runtime.supervisor import ports
from reco_sidecar.runtime.worker.topology import WorkerTopology
from reco_sidecar.serving import server
from reco_sidecar.serving.contracts import WorkerAddress
from reco_sidecar.settings import ServeSettings

START_TIMEOUT = 60.0
HOST = "127.0.0.1"
# A free port is probed, then bound: another process may take it in between, so try again.
BIND_ATTEMPTS = 5


def settings_for(model_root: pathlib.Path, model: str, extra_args: Sequence[str] = ()) -> ServeSettings:
    """The settings `serve --model-root ROOT --model MODEL EXTRA_ARGS` would run with: the
    same options, parsed and validated by the same code."""
    parser = argparse.ArgumentParser()
    serve_settings.add_serve_arguments(parser)
    args = parser.parse_args(["--model-root", str(model_root), "--model", model, "--host", HOST, "--port", "0",
                              *extra_args])
    return serve_settings.from_args(args, (model,), model)


@dataclass
class InProcess:
    """A running in-process server; its address and its registry (the models it serves)."""

    address: str
    settings: ServeSettings
    registry: ModelRegistry
    serving: server.Serving
    thread: threading.Thread
    channels: list[grpc.Channel] = field(default_factory=list)

    def stub(self, **options: Any) -> reco_pb2_grpc.RecommenderStub:
        """A stub on a new channel to the server, closed at teardown."""
        channel = grpc.insecure_channel(self.address, options=list(options.items()))
        self.channels.append(channel)
        return reco_pb2_grpc.RecommenderStub(channel)  # type: ignore[no-untyped-call]

    def serving_thread_alive(self) -> bool:
        return self.thread.is_alive()

    def codes_counted(self) -> set[str]:
        """Every status code the server's gate has counted for the Recommender's calls so far
        (what a worker hands to its metrics)."""
        return {code for (_method, code) in self.serving.tally.rpcs}


class _Runner:
    """The loop thread: builds, binds and starts the server on its own loop, then waits for
    the stop request and drains it."""

    def __init__(self, settings: ServeSettings, registry: ModelRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self.started = threading.Event()
        self.failure: BaseException | None = None
        self.serving: server.Serving | None = None
        self.address = ""
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_requested: asyncio.Event | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # reported to the starting thread, which raises it
            self.failure = e
        finally:
            self.started.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stop_requested = asyncio.Event()
        serving = await self._start()
        self.started.set()
        try:
            await self.stop_requested.wait()
        finally:
            await serving.drain(0.5)
            serving.service.close()

    async def _start(self) -> server.Serving:
        for _ in range(BIND_ATTEMPTS):
            address = f"{HOST}:{ports.probe(HOST, 0)}"
            topology = WorkerTopology(WorkerAddress(os.getpid(), address), address)
            serving = server.build(self.settings, self.registry, reloader=LocalReloader(self.registry),
                                   topology=topology, store_status=topology.store_status, reuse_port=False)
            if serving.bind(address):
                await serving.start()
                self.serving, self.address = serving, address
                return serving
            serving.service.close()
        raise RuntimeError(f"no free port on {HOST} after {BIND_ATTEMPTS} attempts")

    def stop(self) -> None:
        if self.loop is not None and self.stop_requested is not None and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended on its own meanwhile
                self.loop.call_soon_threadsafe(self.stop_requested.set)


def load_registry(s: ServeSettings) -> ModelRegistry:
    """Each model at the version `serve` would start with (versions found bad on the way are
    listed FAILED), opened as a worker opens it."""
    registry = ModelRegistry({name: ModelManager(s.model_root, name, loader.open_model) for name in s.model},
                             s.default_model)
    for manager in registry:
        version, bad = initial_version(s, manager.name)
        for number, reason in bad.items():
            manager.mark_failed(number, reason)
        manager.load(version)
    return registry


@contextlib.contextmanager
def in_process_sidecar(model_root: pathlib.Path, model: str, *, extra_args: Sequence[str] = (),
                       start_timeout: float = START_TIMEOUT) -> Iterator[InProcess]:
    """Yields a started in-process server serving `model` from `model_root` with the `serve`
    options `extra_args`; on exit its channels are closed, the server drained and stopped and
    its loop thread joined, whatever happened."""
    settings = settings_for(model_root, model, extra_args)
    registry = load_registry(settings)
    runner = _Runner(settings, registry)
    thread = threading.Thread(target=runner.run, name="inprocess-server", daemon=True)
    thread.start()
    harness: InProcess | None = None
    try:
        if not runner.started.wait(start_timeout):
            raise TimeoutError(f"the in-process server did not start within {start_timeout} s")
        if runner.failure is not None or runner.serving is None:
            raise RuntimeError(f"the in-process server did not start: {runner.failure!r}") from runner.failure
        harness = InProcess(runner.address, settings, registry, runner.serving, thread)
        yield harness
    finally:
        if harness is not None:
            for channel in harness.channels:
                channel.close()
        runner.stop()
        thread.join(start_timeout)
        if thread.is_alive():
            raise RuntimeError("the in-process server's loop thread did not end")
        if runner.failure is not None and harness is not None:
            raise RuntimeError(f"the in-process server failed: {runner.failure!r}") from runner.failure
