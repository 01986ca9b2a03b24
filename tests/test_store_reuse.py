"""The store's cache is keyed by what the marker vouches for (the manifest's sha256), not by
the version number alone (docs/operations.md, failure modes). A bucket re-created with a
reused number used to split the fleet silently: replicas with the old bytes cached kept
them, fresh ones downloaded the new, all reported the same version. Now a replica serving
the old bytes says so (status and log), and one restarting replaces its stale copy. And a
store failure, once over, is no longer reported under its version."""

from __future__ import annotations

import pathlib
import shutil

import pytest

from harness.procs import wait_until
from harness.seaweedfs import S3Server
from reco_sidecar.artifact import layout
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.training import als
from tests.support.models import train_demo
from tests.support.server import Sidecar
from tests.support.store import new_bucket, object_key, publish_version, remote, replicas, status, wait_all
from tests.support.versions import copy_version

pytestmark = pytest.mark.slow
USERS = [f"u{i:07d}" for i in range(0, 500, 25)]


def answers(sc: Sidecar) -> list[tuple[str, ...]]:
    stub = sc.stub()
    return [tuple(x.item_id for x in stub.Recommend(reco_pb2.RecommendRequest(user_id=u, n=10), timeout=10).items)
            for u in USERS]


def test_a_reused_version_number_is_reported_and_replaced_on_restart(
        s3_server: S3Server, demo_root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    retrained = tmp_path / "retrained"
    train_demo(retrained, params=als.AlsParams(factors=16, iterations=8, seed=99), data_dir=tmp_path)
    bucket = new_bucket(s3_server)
    publish_version(s3_server, bucket, demo_root / "demo" / "1")
    old_cache, fresh_cache = tmp_path / "old", tmp_path / "fresh"
    with replicas(s3_server, bucket, [old_cache]) as (old,):
        before = answers(old)
        # The bucket is emptied and the other model published under the same number.
        client = s3_server.client()
        for obj in client.list_objects_v2(Bucket=bucket).get("Contents", []):
            client.delete_object(Bucket=bucket, Key=obj["Key"])
        publish_version(s3_server, bucket, retrained / "demo" / "1")
        (st,) = wait_all([old], lambda s: s.store.failed_version == 1, "the reused number to be reported")
        assert "reused" in st.store.error and st.version == 1, st.store.error
        assert answers(old) == before  # still serving what it verified
        assert any(e.get("event") == "store_cache_stale" for e in old.log_events())
    with replicas(s3_server, bucket, [old_cache, fresh_cache]) as both:
        assert answers(both[0]) == answers(both[1]) != before
        for st in wait_all(both, lambda s: s.version == 1, "both on version 1"):
            assert st.store.failed_version == 0 and st.store.error == ""


def test_failed_version_is_cleared_once_the_replica_recovers(
        s3_server: S3Server, demo_root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    local = tmp_path / "local"
    shutil.copytree(demo_root, local)
    copy_version(local / "demo", 1)
    bucket = new_bucket(s3_server)
    publish_version(s3_server, bucket, local / "demo" / "1")
    publish_version(s3_server, bucket, local / "demo" / "2", promote=False)
    client = s3_server.client()
    key = object_key(bucket, 2, layout.ITEM_FACTORS)
    data = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    data[-5] ^= 0xFF
    client.put_object(Bucket=bucket, Key=key, Body=bytes(data))
    with replicas(s3_server, bucket, [tmp_path / "cache"]) as (sc,):
        remote(s3_server, bucket).write_pointer(2)
        wait_all([sc], lambda s: s.store.failed_version == 2, "version 2 refused")
        remote(s3_server, bucket).write_pointer(1)
        wait_until(lambda: status(sc).store.failed_version == 0, 60, "the failure to be cleared")
        st = status(sc)
        assert st.store.error == "" and st.store.target_version == 1 and st.version == 1
