"""A version found bad anywhere is FAILED, with its reason, in every worker's GetModelStatus
(docs/api.md: the state of every version seen), also when the supervisor refused it before
any worker loaded it, and in workers started afterwards. Against the real process tree."""

from __future__ import annotations

import os
import pathlib
import signal

import grpc
import pytest

from harness.faults import BAD_MANIFESTS, answers, publish_copy, worker_pid
from harness.procs import wait_until
from harness.sidecar import recommender
from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.server import running_sidecar
from tests.support.versions import copy_version, flip_byte

pytestmark = pytest.mark.slow


def _failed(address: str) -> dict[int, str]:
    """version -> error of every version the worker at `address` lists as FAILED"""
    with recommender(address) as stub:
        st = stub.GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=5)
    return {v.version: v.error for v in st.versions if v.state == reco_pb2.MODEL_STATE_FAILED}


def test_versions_the_supervisor_refused_are_failed_on_every_worker_and_on_later_ones(
        demo_copy: pathlib.Path) -> None:
    model_dir = demo_copy / "demo"
    # Skipped by `latest` at start: the supervisor's check refuses it before any worker starts.
    at_start = copy_version(model_dir, 1)
    flip_byte(model_dir / str(at_start) / "item_factors.npy")
    with running_sidecar(demo_copy, "demo", workers=2) as sc:
        assert sc.ready["version"] == 1
        # Refused by the supervisor's verification on a Reload: no worker ever loads it.
        on_reload = int(publish_copy(model_dir, 1, BAD_MANIFESTS["training_list"]).name)
        with pytest.raises(grpc.RpcError) as e:
            sc.stub().Reload(reco_pb2.ReloadRequest(version=str(on_reload)), timeout=60)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        for address in sc.worker_addresses:
            failed = _failed(address)
            assert set(failed) == {at_start, on_reload}, (address, failed)
            assert "item_factors.npy" in failed[at_start] and "sha256" in failed[at_start]
            assert "training" in failed[on_reload]
        # A worker started afterwards learns them at boot.
        victim = sc.worker_addresses[1]
        old = worker_pid(victim)
        os.kill(old, signal.SIGKILL)
        wait_until(answers(lambda: worker_pid(victim, timeout=1) != old), 30, "the killed worker to be replaced")
        assert set(_failed(victim)) == {at_start, on_reload}
