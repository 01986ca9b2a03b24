"""A replica following a model store when one of its workers faults during a rollout the
store asked for (issue 24): a worker's fault says nothing about the version, so the replica
must not stay behind the fleet. Through the real process tree and a real S3 server."""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal

import grpc
import pytest

from harness.faults import worker_pid, worker_version
from harness.procs import wait_until
from harness.seaweedfs import S3Server
from harness.versions import copy_version
from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.server import Sidecar
from tests.support.store import new_bucket, publish_version, remote, replicas, status

pytestmark = pytest.mark.slow


def _events(sc: Sidecar, name: str) -> list[dict[str, object]]:
    return [e for e in sc.log_events() if e.get("event") == name]


def _serves(address: str, version: int) -> bool:
    try:
        return worker_version(address, timeout=1) == version
    except grpc.RpcError:
        return False


def test_a_worker_stopped_while_the_store_moves_does_not_leave_the_replica_behind(
        s3_server: S3Server, demo_copy: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """One worker is stopped; the store's CURRENT moves to a good version 2; the stopped worker
    misses its heartbeat during the rollout and is replaced. The rollout is aborted, not the
    version condemned: the follower offers it again and every worker ends up serving it."""
    model_dir = demo_copy / "demo"
    bucket = new_bucket(s3_server)
    publish_version(s3_server, bucket, model_dir / "1")
    version = copy_version(model_dir, 1)
    publish_version(s3_server, bucket, model_dir / str(version), promote=False)  # uploaded; CURRENT stays 1
    with replicas(s3_server, bucket, [tmp_path / "cache"], watch=0.2, workers=2,
                  extra_args=("--worker-timeout", "3")) as (sc,):
        assert all(_serves(a, 1) for a in sc.worker_addresses)
        stopped = worker_pid(sc.worker_addresses[1])
        os.kill(stopped, signal.SIGSTOP)
        try:
            remote(s3_server, bucket).write_pointer(version)
            wait_until(lambda: _events(sc, "worker_timeout"), 60, "the stopped worker to be timed out")
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(stopped, signal.SIGCONT)
        wait_until(lambda: all(_serves(a, version) for a in sc.worker_addresses), 60,
                   f"every worker to serve version {version}")
        # The fault hit the rollout (it was aborted), yet the version was never condemned.
        assert [e for e in _events(sc, "reload_failed") if e.get("version") == version]
        assert not [e for e in _events(sc, "version_failed") if e.get("version") == version]
        st = status(sc)
        assert st.store.target_version == version and st.store.failed_version == 0 and not st.store.error
        assert not [v for v in st.versions if v.state == reco_pb2.MODEL_STATE_FAILED]
