"""One worker process: a gRPC server on the shared SO_REUSEPORT port and on a port of its
own, serving the model its ModelManager holds. Started by the supervisor after fork; it
creates every gRPC object itself (grpc/grpc#16001)."""

from __future__ import annotations

import ctypes
import os
import pathlib
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from reco_sidecar.artifact import loader
from reco_sidecar.common import logs
from reco_sidecar.common.errors import FailedPrecondition
from reco_sidecar.common.exit_codes import ExitCode
from reco_sidecar.engine.model import Model
from reco_sidecar.experiments.checks import ExperimentsFile, arm_versions, parse_sent
from reco_sidecar.experiments.counters import SharedCounters
from reco_sidecar.experiments.live import LiveExperiments
from reco_sidecar.manager.manager import ModelManager
from reco_sidecar.manager.registry import ModelRegistry
from reco_sidecar.ranking.live import LiveRules
from reco_sidecar.ranking.rules import RulesFile
from reco_sidecar.runtime import wire as m
from reco_sidecar.runtime.channel import Channel
from reco_sidecar.runtime.worker.heartbeat import BootBeats, Heartbeat
from reco_sidecar.runtime.worker.stop import StopReason
from reco_sidecar.serving import metrics
from reco_sidecar.settings import ServeSettings

log = logs.get(__name__)
PR_SET_PDEATHSIG = 1
FLUSH_EVERY = 1.0


@dataclass(frozen=True)
class WorkerSpec:
    slot: int
    private_port: int
    versions: dict[str, int]  # model -> version to boot
    supervisor_pid: int
    experiments: ExperimentsFile = field(default_factory=ExperimentsFile.empty)
    experiments_generation: int = 0
    # Per-arm counters every worker shares (made by the supervisor before forking).
    counters: SharedCounters | None = None
    # Versions known bad when this worker was forked, per model ((version, reason), ...):
    # listed FAILED from the start; later ones arrive as MarkFailed.
    failed: dict[str, tuple[tuple[int, str], ...]] = field(default_factory=dict)
    # The ranking rules the pool serves when this worker was forked (validated by the supervisor).
    rules: RulesFile = field(default_factory=RulesFile.empty)
    rules_generation: int = 0


def _die_with_parent(supervisor_pid: int) -> None:
    """If the supervisor is killed outright, the kernel kills us too."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != supervisor_pid:
        os._exit(ExitCode.OK)


def _opener(path: pathlib.Path) -> Model:
    # Verified again here, through the descriptors the arrays are then mapped from: a file
    # swapped since the supervisor's check is never served. Hashes the supervisor computed
    # before forking this worker are inherited (keyed by the files' identity), so only a
    # version first seen by a reload is hashed in the worker.
    return loader.open_model(path)


def run(settings: ServeSettings, spec: WorkerSpec, channel: Channel) -> int:
    _die_with_parent(spec.supervisor_pid)
    # From the fork until the serving loop beats itself (every step of the boot can be slow
    # on a busy machine, importing gRPC included); stopped by that loop's first beat.
    boot = BootBeats(Heartbeat(channel, spec.slot, settings.worker_timeout))
    try:
        return _boot(settings, spec, channel, boot)
    finally:
        boot.stop()


def _boot(settings: ServeSettings, spec: WorkerSpec, channel: Channel, boot: BootBeats) -> int:
    from threadpoolctl import threadpool_limits

    # One BLAS thread per scoring thread: the cores are shared by the worker processes.
    threadpool_limits(1)
    events: queue.SimpleQueue[StopReason] = queue.SimpleQueue()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: events.put(
            StopReason.SHUTDOWN if signum == signal.SIGTERM else StopReason.INTERRUPT))
    registry = ModelRegistry({name: ModelManager(settings.model_root, name, _opener) for name in spec.versions},
                             settings.default_model)
    # Validated by the supervisor before the fork: parsing it again cannot fail.
    experiments = LiveExperiments(parse_sent(spec.experiments.text, spec.experiments.syntax),
                                  spec.experiments_generation, spec.counters, spec.slot)
    for manager in registry:
        for bad, reason in spec.failed.get(manager.name, ()):
            manager.mark_failed(bad, reason)
    for manager in registry:
        version = spec.versions[manager.name]
        try:
            manager.load(version)
        except FailedPrecondition as e:
            log.error("worker_load_failed", slot=spec.slot, model=manager.name, version=version, error=str(e))
            channel.send(m.BootFailed(spec.slot, f"model {manager.name!r}: {e}"))
            return ExitCode.WORKER_LOAD_FAILED
    if settings.online:
        from reco_sidecar.runtime.learner.client import await_table

        # Ready means the journal's events are visible: wait (bounded) for the learner's table.
        if not await_table(settings.online_path / "tables", settings.default_model,
                           spec.versions[settings.default_model]):
            log.warning("online_table_missing", slot=spec.slot, version=spec.versions[settings.default_model])
    pins = arm_versions(experiments.current)
    try:
        registry.use_arm_versions(registry.open_arm_versions(pins))
    except FailedPrecondition as e:
        log.error("worker_load_failed", slot=spec.slot, pinned=[f"{n}@{v}" for n, v in pins], error=str(e))
        channel.send(m.BootFailed(spec.slot, f"a version an experiment arm pins: {e}"))
        return ExitCode.WORKER_LOAD_FAILED
    return _serve(settings, spec, channel, registry, experiments, events, boot)


def _serve(settings: ServeSettings, spec: WorkerSpec, channel: Channel, registry: ModelRegistry,
           experiments: LiveExperiments, events: queue.SimpleQueue[StopReason], boot: BootBeats) -> int:
    import asyncio

    return asyncio.run(_serve_async(settings, spec, channel, registry, experiments, events, boot))


async def _serve_async(settings: ServeSettings, spec: WorkerSpec, channel: Channel, registry: ModelRegistry,
                       experiments: LiveExperiments, events: queue.SimpleQueue[StopReason], boot: BootBeats) -> int:
    """One grpc.aio server on this process's event loop (created here, after fork)."""
    import asyncio

    from reco_sidecar.runtime.worker.control import WorkerControl
    from reco_sidecar.runtime.worker.topology import WorkerTopology
    from reco_sidecar.serving import server as serving_server
    from reco_sidecar.serving.contracts import WorkerAddress

    loop = asyncio.get_running_loop()
    address = f"{settings.host}:{spec.private_port}"
    topology = WorkerTopology(WorkerAddress(os.getpid(), address), settings.shared_address)
    rules = LiveRules(spec.rules, spec.rules_generation)
    control = WorkerControl(channel, registry, topology, events, drain_timeout=max(settings.grace, 5.0),
                            reload_timeout=settings.reload_timeout,
                            experiments=experiments, rules=rules)
    online = None
    if settings.online:
        from reco_sidecar.runtime.learner.client import LearnerClient
        from reco_sidecar.runtime.learner.framing import address as learner_address

        online = LearnerClient(learner_address(spec.supervisor_pid), settings.online_path / "tables",
                               settings.default_model)
    serving = serving_server.build(settings, registry, reloader=control, topology=topology, experiments=experiments,
                                   reload_experiments=control.reload_experiments,
                                   store_status=topology.store_status, online=online, rules=rules,
                                   reload_rules=control.reload_rules)
    service, gate, tally = serving.service, serving.gate, serving.tally
    control.traces = serving.tracing  # its part in a traced Reload is a span of this process
    for target in (settings.shared_address, address):
        if serving.bind(target) == 0:
            log.error("worker_bind_failed", address=target)
            channel.send(m.BootFailed(spec.slot, f"cannot bind {target}"))
            return ExitCode.WORKERS_FAILED
    await serving.start()
    ended: asyncio.Future[StopReason] = loop.create_future()
    _bridge_events(events, loop, ended)
    control.start()
    versions = []
    for manager in registry:
        model = manager.current
        assert model is not None  # load() succeeded
        metrics.track_model(model)
        versions.append(m.ModelVersion(manager.name, model.version))
    channel.send(m.Ready(spec.slot, os.getpid(), address, tuple(versions), experiments.generation,
                         rules.current[1]))
    log.info("worker_serving", slot=spec.slot, shared=settings.shared_address, address=address,
             versions={v.model: v.version for v in versions})
    beats = Heartbeat(channel, spec.slot, settings.worker_timeout, gate.counts)
    ticker = loop.create_task(_tick(beats, boot, registry, tally))
    event = await ended
    grace = settings.grace
    if event.fast:
        grace = min(grace, 1.0)
    log.info("worker_draining", slot=spec.slot, reason=event.value, grace=grace)
    started = time.monotonic()
    await serving.drain(grace)
    ticker.cancel()
    service.close()
    metrics.flush(tally.take())
    log.info("worker_exit", slot=spec.slot, drained_seconds=round(time.monotonic() - started, 3))
    return ExitCode.OK


def _bridge_events(events: queue.SimpleQueue[StopReason], loop: Any, ended: Any) -> None:
    """Signals and control messages arrive on a thread-safe queue; the first one that ends
    serving resolves `ended` on the loop. A thread blocks on the queue so that the loop
    never polls it."""

    def settle(event: StopReason) -> None:
        if not ended.done():
            ended.set_result(event)

    def wait() -> None:
        event = events.get()
        loop.call_soon_threadsafe(settle, event)

    threading.Thread(target=wait, name="events", daemon=True).start()


async def _tick(beats: Heartbeat, boot: BootBeats, registry: ModelRegistry, tally: Any) -> None:
    """Every heartbeat interval, from the event loop itself (a worker whose loop is stuck stops
    beating and is replaced, heartbeat.py): a beat with the call counts (idle detection), the
    serving version published; about once a second the in-process counts handed to the
    metrics files. The boot's thread stops beating once this loop has beaten."""
    import asyncio

    last_flush = time.monotonic()
    while True:
        beats.beat()
        boot.stop()
        for manager in registry:
            metrics.track_model(manager.current)
        now = time.monotonic()
        if now - last_flush >= FLUSH_EVERY:
            last_flush = now
            metrics.flush(tally.take())
        await asyncio.sleep(beats.interval)
