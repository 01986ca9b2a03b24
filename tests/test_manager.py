from __future__ import annotations

import pathlib
import threading

import pytest

from harness.local_reload import find_version
from reco_sidecar.artifact import loader
from reco_sidecar.common.errors import FailedPrecondition, NotFound, Unavailable
from reco_sidecar.common.versions import parse_version_spec
from reco_sidecar.engine.query import RecQuery, Restriction
from reco_sidecar.manager.manager import ModelManager, VersionState
from tests.support.versions import copy_version, truncate


@pytest.fixture
def manager(demo_copy: pathlib.Path) -> ModelManager:
    copy_version(demo_copy / "demo", 1)
    m = ModelManager(demo_copy, "demo", loader.open_model)
    m.load(1)
    return m


def test_nothing_is_served_before_a_load(demo_copy: pathlib.Path) -> None:
    m = ModelManager(demo_copy, "demo", loader.open_model)
    with pytest.raises(Unavailable), m.lease():
        pass


def test_a_lease_keeps_its_model_across_a_swap_and_commit_waits_for_it(manager: ModelManager) -> None:
    committed = threading.Event()
    with manager.lease() as held:
        assert held.version == 1
        manager.prepare(2)
        def commit() -> None:
            manager.commit(2)
            committed.set()

        t = threading.Thread(target=commit)
        t.start()
        # new leases get the new model at once, while the old lease is still running
        for _ in range(100):
            if manager.current is not None and manager.current.version == 2:
                break
            threading.Event().wait(0.01)
        with manager.lease() as fresh:
            assert fresh.version == 2
        assert held.version == 1 and not committed.wait(0.2)
        assert {s.version: s.state for s in manager.statuses()}[1] == VersionState.UNLOADING
        # the old model still answers while leased
        assert len(held.recommend([RecQuery(0, 5, Restriction.none(), user_row=0)])[0].rows) == 5
    assert committed.wait(5)
    t.join()
    assert {s.version: s.state for s in manager.statuses()} == {1: VersionState.END, 2: VersionState.AVAILABLE}


def test_a_failed_load_is_a_state_and_the_serving_version_stays(manager: ModelManager,
                                                                 demo_copy: pathlib.Path) -> None:
    bad = copy_version(demo_copy / "demo", 1)
    truncate(demo_copy / "demo" / str(bad) / "seen_indices.npy")
    with pytest.raises(FailedPrecondition) as e:
        manager.prepare(bad)
    assert "seen_indices.npy" in str(e.value)
    status = {s.version: s for s in manager.statuses()}
    assert status[bad].state == VersionState.FAILED and "size" in status[bad].error
    assert manager.current is not None and manager.current.version == 1


def test_commit_without_prepare_is_refused(manager: ModelManager) -> None:
    with pytest.raises(FailedPrecondition):
        manager.commit(2)
    assert manager.current is not None and manager.current.version == 1


def test_abort_drops_a_prepared_version(manager: ModelManager) -> None:
    manager.prepare(2)
    manager.abort(2)
    with pytest.raises(FailedPrecondition):
        manager.commit(2)
    assert {s.version: s.state for s in manager.statuses()}[2] == VersionState.END


def test_the_in_process_reload_finds_the_version_a_spec_names(manager: ModelManager) -> None:
    assert find_version(manager, parse_version_spec("latest")) == 2
    assert find_version(manager, parse_version_spec("1")) == 1
    with pytest.raises(NotFound):
        find_version(manager, 7)


def test_a_version_failed_elsewhere_is_listed_failed_unless_this_process_holds_it(manager: ModelManager) -> None:
    """The supervisor relays versions it found bad (MarkFailed); what the process itself holds
    wins: a prepared version stays AVAILABLE until an abort drops it, then reads FAILED."""
    manager.mark_failed(3, "version 3: sha256 does not match")
    manager.mark_failed(1, "never shown: version 1 serves here")
    states = {s.version: (s.state, s.error) for s in manager.statuses()}
    assert states[3] == (VersionState.FAILED, "version 3: sha256 does not match")
    assert states[1][0] == VersionState.AVAILABLE
    manager.prepare(2)
    manager.mark_failed(2, "worker 1 timed out during the reload")
    assert {s.version: s.state for s in manager.statuses()}[2] == VersionState.AVAILABLE
    manager.abort(2)
    assert {s.version: s.state for s in manager.statuses()}[2] == VersionState.FAILED
    manager.prepare(2)  # asked again: its own outcome counts from now on
    assert {s.version: s.state for s in manager.statuses()}[2] == VersionState.AVAILABLE
