"""An operator's rollback is not undone by --watch or a model store's pointer: a Reload to a
number pins that version until a Reload of `latest` or SIGHUP (docs/operations.md, "Pinning").
Against the real process tree."""

from __future__ import annotations

import pathlib
import shutil

import pytest

from harness.faults import answers, worker_version
from harness.procs import wait_until
from harness.seaweedfs import S3Server
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.training import als
from tests.support.models import train_demo
from tests.support.server import Sidecar, running_sidecar
from tests.support.store import new_bucket, publish_version, status, store_uri
from tests.support.versions import copy_version

pytestmark = pytest.mark.slow


def _serving(sc: Sidecar) -> set[int]:
    return {worker_version(a) for a in sc.worker_addresses}


def test_a_rollback_pins_its_version_against_the_watch_until_a_reload_of_latest(
        demo_copy: pathlib.Path, tmp_path: pathlib.Path) -> None:
    model_dir = demo_copy / "demo"
    train_demo(demo_copy, params=als.AlsParams(factors=16, iterations=8, seed=99), data_dir=tmp_path)
    with running_sidecar(demo_copy, "demo", workers=2, extra_args=["--watch", "0.2"]) as sc:
        assert sc.ready["version"] == 2
        resp = sc.stub().Reload(reco_pb2.ReloadRequest(version="1"), timeout=60)
        assert (resp.old_version, resp.new_version, resp.workers) == (2, 1, 2)
        # The watch sees the newer versions (2, and 3 published now) and leaves version 1 serving.
        third = copy_version(model_dir, 2)
        wait_until(lambda: any(e.get("event") == "watch_pinned" and e.get("version") == third
                               for e in sc.log_events()), 30, "the watch to see the new version while pinned")
        assert _serving(sc) == {1}
        assert not [e for e in sc.log_events() if e.get("event") == "watch_found_version"]
        # `latest` unpins: it takes the newest, and the watch follows new versions again.
        resp = sc.stub().Reload(reco_pb2.ReloadRequest(version="latest"), timeout=60)
        assert (resp.new_version, resp.workers) == (third, 2)
        fourth = copy_version(model_dir, 2)
        wait_until(answers(lambda: _serving(sc) == {fourth}), 60, f"the watch to reload version {fourth}")


def test_sighup_reloads_latest_and_unpins(demo_copy: pathlib.Path) -> None:
    import os
    import signal

    model_dir = demo_copy / "demo"
    copy_version(model_dir, 1)
    with running_sidecar(demo_copy, "demo", workers=1, extra_args=["--watch", "0.2"]) as sc:
        assert sc.stub().Reload(reco_pb2.ReloadRequest(version="1"), timeout=60).new_version == 1
        os.kill(sc.proc.pid, signal.SIGHUP)
        wait_until(answers(lambda: _serving(sc) == {2}), 60, "SIGHUP to reload the newest version")
        third = copy_version(model_dir, 1)
        wait_until(answers(lambda: _serving(sc) == {third}), 60, f"the watch to reload version {third}")


def test_a_pinned_replica_keeps_its_version_whatever_the_store_pointer_says(
        s3_server: S3Server, demo_root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    bucket = new_bucket(s3_server)
    local = tmp_path / "published"
    shutil.copytree(demo_root, local)
    copy_version(local / "demo", 1)
    copy_version(local / "demo", 1)
    publish_version(s3_server, bucket, local / "demo" / "1")
    publish_version(s3_server, bucket, local / "demo" / "2")
    args = ["--model-store", store_uri(bucket), "--watch", "0.2"]
    with running_sidecar(tmp_path / "cache", "demo", env=s3_server.env(), extra_args=args) as sc:
        assert sc.ready["version"] == 2
        assert sc.stub().Reload(reco_pb2.ReloadRequest(version="1"), timeout=60).new_version == 1
        publish_version(s3_server, bucket, local / "demo" / "3")  # and promoted: CURRENT = 3
        wait_until(lambda: any(e.get("event") == "watch_pinned" and e.get("version") == 3
                               for e in sc.log_events()), 30, "the follower to offer version 3 while pinned")
        assert status(sc).version == 1
        assert sc.stub().Reload(reco_pb2.ReloadRequest(version="latest"), timeout=60).new_version == 3
