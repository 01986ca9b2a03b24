"""The worker's side of the control channel (runtime/worker/control.py) with a real channel
and a real model manager: an Abort that arrives while its Prepare is still loading wins,
and the version it prepared is dropped, not left loaded."""

from __future__ import annotations

import pathlib
import queue
import select
import threading

from harness.procs import wait_until
from reco_sidecar.artifact import loader
from reco_sidecar.engine.model import Model
from reco_sidecar.manager.manager import ModelManager, VersionState
from reco_sidecar.manager.registry import ModelRegistry
from reco_sidecar.runtime import wire as m
from reco_sidecar.runtime.channel import Channel, pair
from reco_sidecar.runtime.worker.control import WorkerControl
from reco_sidecar.runtime.worker.stop import StopReason
from reco_sidecar.runtime.worker.topology import WorkerTopology
from reco_sidecar.serving.contracts import WorkerAddress
from tests.support.versions import copy_version


def next_answer(supervisor: Channel, timeout: float = 60.0) -> m.ToSupervisor | None:
    """The worker's next message, or None when none came within `timeout` (a bound, not a timing)."""
    if not select.select([supervisor], [], [], timeout)[0]:
        return None
    return supervisor.recv(m.decode_to_supervisor)


def test_an_abort_overtakes_a_running_prepare_and_drops_its_version(demo_copy: pathlib.Path) -> None:
    copy_version(demo_copy / "demo", 1, 2)
    loading = threading.Event()
    release = threading.Event()

    def opener(path: pathlib.Path) -> Model:
        if path.name == "2":
            loading.set()
            assert release.wait(60), "the test never released the load"
        return loader.open_model(path)

    manager = ModelManager(demo_copy, "demo", opener)
    manager.load(1)
    worker_end, supervisor_end = pair()
    supervisor = Channel(supervisor_end)
    events: queue.SimpleQueue[StopReason] = queue.SimpleQueue()
    topology = WorkerTopology(WorkerAddress(1, "127.0.0.1:1"), "127.0.0.1:2")
    control = WorkerControl(Channel(worker_end), ModelRegistry({"demo": manager}, "demo"), topology, events,
                            drain_timeout=5.0)
    control.start()
    try:
        supervisor.send(m.Prepare(1, 2, "demo"))
        assert loading.wait(60), "the prepare never started"
        supervisor.send(m.Abort(1, 2, "demo"))
        # The receiving thread notes the abort at once, while the apply thread still loads:
        # the Workers message behind it is handled (the topology empties) before the load ends.
        supervisor.send(m.Workers(()))
        wait_until(lambda: topology.workers() == [], 60, "the receiving thread to pass the abort")
        assert not release.is_set()
        release.set()
        # Transaction 2 prepares the same version: its answer is the next message, so the
        # aborted transaction 1 answered nothing.
        supervisor.send(m.Prepare(2, 2, "demo"))
        answer = next_answer(supervisor)
        assert isinstance(answer, m.Prepared) and (answer.txn, answer.version) == (2, 2)
        states = {s.version: s.state for s in manager.statuses()}
        assert states[2] is VersionState.AVAILABLE and manager.current is not None
        assert manager.current.version == 1  # prepared, not serving
        # The abort of 1 did not stick to transaction 2: committing it serves version 2.
        supervisor.send(m.Commit(2, 2, "demo"))
        committed = next_answer(supervisor)
        assert isinstance(committed, m.Committed) and manager.current.version == 2
    finally:
        supervisor.close()
    assert events.get(timeout=60) is StopReason.SUPERVISOR_GONE


def test_an_aborted_prepare_leaves_no_version_loaded(demo_copy: pathlib.Path) -> None:
    copy_version(demo_copy / "demo", 1, 2)
    loading, release = threading.Event(), threading.Event()

    def opener(path: pathlib.Path) -> Model:
        if path.name == "2":
            loading.set()
            assert release.wait(60)
        return loader.open_model(path)

    manager = ModelManager(demo_copy, "demo", opener)
    manager.load(1)
    worker_end, supervisor_end = pair()
    supervisor = Channel(supervisor_end)
    topology = WorkerTopology(WorkerAddress(1, "127.0.0.1:1"), "127.0.0.1:2")
    control = WorkerControl(Channel(worker_end), ModelRegistry({"demo": manager}, "demo"), topology,
                            queue.SimpleQueue(), drain_timeout=5.0)
    control.start()
    try:
        supervisor.send(m.Prepare(1, 2, "demo"))
        assert loading.wait(60)
        supervisor.send(m.Abort(1, 2, "demo"))
        supervisor.send(m.Workers(()))
        wait_until(lambda: topology.workers() == [], 60, "the receiving thread to pass the abort")
        release.set()
        # A later message in the same order as the work queue: answered only after the aborted
        # prepare finished and dropped what it loaded.
        supervisor.send(m.Switch(3, 1, "demo"))
        answer = next_answer(supervisor)
        assert isinstance(answer, m.Committed) and answer.txn == 3
        states = {s.version: s.state for s in manager.statuses()}
        assert states.get(2) in (VersionState.END, VersionState.UNLOADING, None), states
    finally:
        supervisor.close()
