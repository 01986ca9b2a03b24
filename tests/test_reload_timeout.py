"""--reload-timeout through the real process tree: a Reload that outlives it fails UNAVAILABLE
naming the late worker, the old version keeps serving, and no worker keeps the half-loaded
version (docs/api.md, docs/operations.md)."""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal

import grpc
import pytest

from harness.faults import answers, huge_file_version, worker_pid, worker_version
from harness.procs import wait_until
from harness.sidecar import recommender
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.training import als
from tests.support.models import train_demo
from tests.support.server import running_sidecar
from tests.support.versions import copy_version

pytestmark = pytest.mark.slow

HELD = (reco_pb2.MODEL_STATE_LOADING, reco_pb2.MODEL_STATE_AVAILABLE)


def _state(address: str, version: int) -> int | None:
    with recommender(address) as stub:
        st = stub.GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=5)
    return next((int(v.state) for v in st.versions if v.version == version), None)


def test_a_reload_past_the_reload_timeout_fails_unavailable_and_leaves_nothing_half_loaded(
        demo_copy: pathlib.Path, tmp_path: pathlib.Path) -> None:
    train_demo(demo_copy, params=als.AlsParams(factors=16, iterations=8, seed=99), data_dir=tmp_path)
    # The heartbeat deadline is far away: the reload's own timeout is what must end the wait on
    # a worker that is alive but does not answer (here: stopped).
    # 5 s: long enough for the later reloads on a busy machine, far below the heartbeat's 120 s.
    args = ["--version", "1", "--reload-timeout", "5", "--worker-timeout", "120", "--metrics-port", "0"]
    with running_sidecar(demo_copy, "demo", workers=2, extra_args=args) as sc:
        healthy, slow = sc.worker_addresses
        stopped = worker_pid(slow)
        os.kill(stopped, signal.SIGSTOP)
        try:
            with pytest.raises(grpc.RpcError) as e:
                sc.stub(healthy).Reload(reco_pb2.ReloadRequest(version="2"), timeout=60)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE, e.value.details()
            details = e.value.details() or ""
            assert details.startswith("version:") and "worker(s) 1" in details and "5 s" in details, details
            # The worker that loaded version 2 drops it; it keeps serving version 1.
            wait_until(lambda: _state(healthy, 2) == reco_pb2.MODEL_STATE_END, 30,
                       "the healthy worker to drop the aborted version")
            assert worker_version(healthy) == 1
            port = next(int(str(ev["port"])) for ev in sc.log_events() if ev.get("event") == "metrics_serving")
            wait_until(lambda: 'reco_reloads_total{outcome="UNAVAILABLE"} 1.0' in _scrape(port), 30,
                       "the timeout counted as an UNAVAILABLE reload")
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(stopped, signal.SIGCONT)
        wait_until(answers(lambda: worker_version(slow, timeout=1) == 1), 30, "the resumed worker to answer")
        assert worker_pid(slow) == stopped, "the reload timeout must not be a heartbeat timeout in disguise"
        # A later reload runs on the resumed worker's one apply thread after the Prepare it
        # found on waking: once it is done, that Prepare was handled (dropped, being aborted).
        third = copy_version(demo_copy / "demo", 2)
        assert sc.stub(healthy).Reload(reco_pb2.ReloadRequest(version=str(third)), timeout=60).workers == 2
        for address in (healthy, slow):
            assert _state(address, 2) not in HELD, address
            assert worker_version(address) == third
        # A timeout says nothing about the version: it is not FAILED, and loads when asked again.
        assert sc.stub(healthy).Reload(reco_pb2.ReloadRequest(version="2"), timeout=60).workers == 2


def test_a_verification_past_the_reload_timeout_fails_unavailable_and_the_next_reload_works(
        demo_copy: pathlib.Path) -> None:
    """Hashing a 50 GB (sparse) file the manifest vouches for takes minutes: the verifier is
    killed at --reload-timeout and the next reload gets a new one."""
    huge = huge_file_version(demo_copy / "demo", 1, 50 * 1024**3)
    good = copy_version(demo_copy / "demo", 1)
    # Minutes of hashing against 5 s; the good version's reload fits in 5 s with room to spare.
    args = ["--version", "1", "--reload-timeout", "5"]
    with running_sidecar(demo_copy, "demo", workers=2, extra_args=args) as sc:
        with pytest.raises(grpc.RpcError) as e:
            sc.stub().Reload(reco_pb2.ReloadRequest(version=huge.name), timeout=60)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE, e.value.details()
        assert "verifying the version took longer than 5 s" in (e.value.details() or "")
        assert any(ev.get("event") == "verification_timeout" for ev in sc.log_events())
        assert {worker_version(a) for a in sc.worker_addresses} == {1}
        assert sc.stub().Reload(reco_pb2.ReloadRequest(version=str(good)), timeout=60).workers == 2


def _scrape(port: int) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())
