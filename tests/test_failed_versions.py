"""A version found bad anywhere is FAILED, with its reason, in every worker's GetModelStatus
(docs/api.md: the state of every version seen), also when the supervisor refused it before
any worker loaded it, and in workers started afterwards; a version whose files cannot be
read (EIO) is such a version, never a crash. Against the real process tree."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal

import grpc
import pytest

from harness.faults import BAD_MANIFESTS, answers, publish_copy, worker_pid
from harness.procs import wait_until
from harness.sidecar import recommender
from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support import faultyfs
from tests.support.requires import require
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


def test_a_version_whose_file_cannot_be_read_is_failed_naming_it_and_the_sidecar_keeps_serving(
        demo_copy: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """Reads of user_factors.npy fail with EIO (a bad sector, a network file system gone bad):
    open and stat succeed, read(2) does not. Verification used to let the OSError through to
    its catch-all, so the reason named neither the file nor the problem; every read and map
    of a version's files is now an ArtifactError naming the file."""
    require(faultyfs.available(), "/dev/fuse and the right to mount (root)")
    model_dir = demo_copy / "demo"
    backing = tmp_path / "backing"
    shutil.copytree(model_dir / "1", backing)
    manifest = json.loads((backing / "manifest.json").read_text())
    (backing / "manifest.json").write_text(json.dumps({**manifest, "version": 2}))
    with faultyfs.mounted(backing, model_dir / "2", {"user_factors.npy"}) as fs, \
            running_sidecar(demo_copy, "demo", workers=2, extra_args=["--version", "1"]) as sc:
        with pytest.raises(grpc.RpcError) as e:
            sc.stub().Reload(reco_pb2.ReloadRequest(version="2"), timeout=60)
        assert fs.reads_failed > 0, "the fault was never hit: the test proves nothing"
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        details = e.value.details() or ""
        assert f"{model_dir / '2' / 'user_factors.npy'}: cannot be read: Input/output error" in details, details
        # `latest` skips it; every worker keeps serving version 1 and lists 2 FAILED with the reason.
        assert sc.stub().Reload(reco_pb2.ReloadRequest(version="latest"), timeout=60).new_version == 1
        assert sc.proc.poll() is None
        for address in sc.worker_addresses:
            assert "user_factors.npy: cannot be read" in _failed(address)[2]
            with recommender(address) as stub:
                assert stub.Recommend(reco_pb2.RecommendRequest(user_id="u0000001", n=3), timeout=5).version == 1


def test_a_version_the_watch_found_bad_is_failed_on_every_worker(demo_copy: pathlib.Path) -> None:
    with running_sidecar(demo_copy, "demo", workers=2, extra_args=["--watch", "0.2"]) as sc:
        bad = int(publish_copy(demo_copy / "demo", 1, BAD_MANIFESTS["metrics_list"]).name)
        wait_until(lambda: all(bad in _failed(a) for a in sc.worker_addresses), 30,
                   f"every worker to list version {bad} FAILED")
        for address in sc.worker_addresses:
            assert "metrics" in _failed(address)[bad]
