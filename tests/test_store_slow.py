"""A store that trickles bytes (a relay in front of the real SeaweedFS server sending a
version's objects slowly) holds no replica hostage (docs/operations.md, failure modes):

- a restart with a valid cache serves it at once while the target downloads;
- CURRENT pointed back at a cached version is followed while a download is under way;
- a Reload of a cached version succeeds meanwhile;
- a download that stalls fails (UNAVAILABLE, naming the stall) instead of waiting forever.

Without download deadlines and progress checks, and with downloads run inline on the
follower's only loop, each of these waited behind the one download."""

from __future__ import annotations

import pathlib
import shutil

import grpc
import pytest

from harness.procs import wait_until
from harness.relay import relay
from harness.seaweedfs import S3Server
from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.server import Sidecar, running_sidecar
from tests.support.store import new_bucket, publish_version, remote, status, store_uri
from tests.support.versions import copy_version

pytestmark = pytest.mark.slow


def serving(sc: Sidecar, version: int) -> reco_pb2.GetModelStatusResponse | None:
    st = status(sc)
    return st if st.version == version else None


def test_a_trickling_store_never_holds_back_what_the_cache_has(
        s3_server: S3Server, demo_root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    local = tmp_path / "local"
    shutil.copytree(demo_root, local)
    for _ in (2, 3, 4):
        copy_version(local / "demo", 1)
    bucket = new_bucket(s3_server)
    for v in (1, 2, 3, 4):
        publish_version(s3_server, bucket, local / "demo" / str(v))
    remote(s3_server, bucket).write_pointer(3)
    cache = tmp_path / "cache"
    for v in (1, 2):  # what this replica downloaded before its restart
        shutil.copytree(local / "demo" / str(v), cache / "demo" / str(v))
    with relay(s3_server.ports["s3"]) as link:
        # Version 3 comes at 8 KiB/s: slow (over a minute) but never stalled. Version 4 stalls.
        link.drip("/demo/3/", every=1.0, per_drip=8192)
        link.drip("/demo/4/", every=5.0, per_drip=1)
        env = {**s3_server.env(), "RECO_S3_ENDPOINT_URL": link.endpoint}
        with running_sidecar(cache, "demo", env=env,
                             extra_args=["--model-store", store_uri(bucket), "--watch", "0.5"]) as sc:
            assert sc.ready["version"] == 2  # the cache, at once
            wait_until(lambda: status(sc).store.downloading_version == 3, 60, "the download of version 3")
            remote(s3_server, bucket).write_pointer(1)
            st = wait_until(lambda: serving(sc, 1), 60, "the replica to follow CURRENT back to version 1")
            assert st is not None
            # Version 3 cannot have arrived yet at the relay's pace: 1 was not held behind it.
            assert st.store.downloading_version == 3 and 3 not in st.store.cached_versions
            resp = sc.stub().Reload(reco_pb2.ReloadRequest(version="2"), timeout=60)
            assert (resp.old_version, resp.new_version) == (1, 2)
            with pytest.raises(grpc.RpcError) as e:
                sc.stub().Reload(reco_pb2.ReloadRequest(version="4"), timeout=240)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE, e.value.details()
            assert "too slow" in (e.value.details() or ""), e.value.details()
            assert status(sc).version == 2
        assert link.dripped_requests >= 2
