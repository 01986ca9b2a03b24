"""Three replicas, each a separate `serve --model-store` process tree with its own cache,
follow one real S3 server (SeaweedFS): a published version reaches all of them with no
failed call, a corrupted upload is refused everywhere, a pointer rollback converges, and
killing the server mid-download leaves each serving its last good version."""

from __future__ import annotations

import pathlib
import time
from collections.abc import Iterator

import pytest

from harness import seaweedfs
from harness.procs import wait_until
from harness.relay import relay
from harness.seaweedfs import S3Server
from reco_sidecar.artifact import layout
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.training import als
from tests.support.load import Load
from tests.support.models import train_demo
from tests.support.requires import require
from tests.support.server import Sidecar
from tests.support.store import (
    new_bucket,
    object_key,
    publish_version,
    remote,
    replicas,
    wait_all,
)

pytestmark = pytest.mark.slow
REPLICAS = 3


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A local model root with demo versions 1 and 2 (trained with different seeds)."""
    root = tmp_path_factory.mktemp("publisher") / "root"
    train_demo(root)
    train_demo(root, params=als.AlsParams(factors=16, iterations=8, seed=99))
    return root


def caches(tmp_path: pathlib.Path) -> list[pathlib.Path]:
    return [tmp_path / f"cache-{i}" for i in range(REPLICAS)]


class Callers(Load):
    """Recommend calls on every replica at once; each answer is recorded as (replica, version,
    started, returned), times from time.monotonic()."""

    def __init__(self, sidecars: list[Sidecar]) -> None:
        stubs = [sc.stub() for sc in sidecars]

        def call(i: int) -> tuple[int, int, float, float]:
            replica = i % len(stubs)
            started = time.monotonic()
            resp = stubs[replica].Recommend(reco_pb2.RecommendRequest(user_id=f"u{i % 500:07d}", n=10), timeout=10)
            return replica, resp.version, started, time.monotonic()

        super().__init__(call, threads=2 * len(sidecars))

    def versions(self) -> set[int]:
        return {v for _, v, _, _ in self.result.values}


def went_back(calls: list[tuple[int, int, float, float]], replica: int, new: int) -> list[tuple[float, int]]:
    """The promise of an all-or-nothing switch, as a client sees it: a call that STARTS after a
    call to the same replica RETURNED `new` never gets an older version. (Calls that overlap may
    finish in any order: one that leased the old version may end after one that got the new.)"""
    mine = [c for c in calls if c[0] == replica]
    first_new = min((returned for _, v, _, returned in mine if v == new), default=float("inf"))
    return [(started, v) for _, v, started, _ in mine if started > first_new and v < new]


def test_a_published_version_reaches_every_replica_with_no_failed_call(
        s3_server: S3Server, two_versions: pathlib.Path, tmp_path: pathlib.Path) -> None:
    bucket = new_bucket(s3_server)
    publish_version(s3_server, bucket, two_versions / "demo" / "1")
    with replicas(s3_server, bucket, caches(tmp_path)) as sidecars:
        assert [sc.ready["version"] for sc in sidecars] == [1] * REPLICAS
        with Callers(sidecars) as load:
            publish_version(s3_server, bucket, two_versions / "demo" / "2")
            statuses = wait_all(sidecars, lambda st: st.version == 2, "serving version 2")
            switched = time.monotonic()
            wait_until(lambda: all(sum(1 for r, _, started, _ in list(load.result.values)
                                       if r == replica and started > switched) >= 10 for replica in range(REPLICAS)),
                       30, "ten calls to every replica after the switch")
        assert load.result.failures == 0, load.result.errors[:5]
        for replica in range(REPLICAS):
            calls = [c for c in load.result.values if c[0] == replica]
            assert {v for _, v, _, _ in calls} == {1, 2}
            assert went_back(load.result.values, replica, 2) == [], f"replica {replica} went back"
        for st in statuses:
            assert st.store.uri.endswith("/models/uro/demo/")
            assert st.store.target_version == 2 and st.store.downloading_version == 0
            assert list(st.store.cached_versions) == [1, 2]
            assert st.store.error == "" and st.store.checked_at > 0
        for cache in caches(tmp_path):
            names = sorted(p.name for p in (cache / "demo").iterdir())
            assert names == ["1", "2"], names  # no hidden download left behind


def test_a_corrupted_upload_is_refused_everywhere_while_the_old_version_serves(
        s3_server: S3Server, two_versions: pathlib.Path, tmp_path: pathlib.Path) -> None:
    bucket = new_bucket(s3_server)
    publish_version(s3_server, bucket, two_versions / "demo" / "1")
    publish_version(s3_server, bucket, two_versions / "demo" / "2", promote=False)
    # The upload of version 2 went wrong after the manifest was written: one byte differs.
    client = s3_server.client()
    key = object_key(bucket, 2, layout.ITEM_FACTORS)
    data = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    data[-5] ^= 0xFF
    client.put_object(Bucket=bucket, Key=key, Body=bytes(data))
    with replicas(s3_server, bucket, caches(tmp_path)) as sidecars, Callers(sidecars) as load:
        remote(s3_server, bucket).write_pointer(2)
        statuses = wait_all(sidecars, lambda st: st.store.failed_version == 2, "version 2 refused")
    assert load.result.failures == 0, load.result.errors[:5]
    assert load.versions() == {1}
    for st in statuses:
        assert st.version == 1
        assert st.store.target_version == 2
        assert "sha256" in st.store.error and layout.ITEM_FACTORS in st.store.error, st.store.error
        failed = [v for v in st.versions if v.version == 2]
        assert failed and failed[0].state == reco_pb2.MODEL_STATE_FAILED and failed[0].error == st.store.error
        assert list(st.store.cached_versions) == [1]
    for cache in caches(tmp_path):
        assert sorted(p.name for p in (cache / "demo").iterdir()) == ["1"]


def test_a_pointer_rollback_converges_on_every_replica(
        s3_server: S3Server, two_versions: pathlib.Path, tmp_path: pathlib.Path) -> None:
    bucket = new_bucket(s3_server)
    publish_version(s3_server, bucket, two_versions / "demo" / "1")
    publish_version(s3_server, bucket, two_versions / "demo" / "2")
    with replicas(s3_server, bucket, caches(tmp_path)) as sidecars:
        assert [sc.ready["version"] for sc in sidecars] == [2] * REPLICAS
        with Callers(sidecars) as load:
            remote(s3_server, bucket).write_pointer(1)
            wait_all(sidecars, lambda st: st.version == 1 and st.store.target_version == 1, "rolled back to 1")
            remote(s3_server, bucket).write_pointer(2)
            statuses = wait_all(sidecars, lambda st: st.version == 2, "forward again to 2")
        assert load.result.failures == 0, load.result.errors[:5]
        assert load.versions() == {1, 2}
        for st in statuses:
            assert list(st.store.cached_versions) == [1, 2]


@pytest.fixture
def private_s3(tmp_path: pathlib.Path) -> Iterator[S3Server]:
    """A server of this test's own, since the test kills it."""
    binary = seaweedfs.weed_binary()
    require(binary is not None, "SeaweedFS's weed (scripts/seaweedfs.sh builds it)")
    assert binary is not None
    with seaweedfs.running_s3(binary, tmp_path / "weed") as server:
        yield server


def test_killing_the_store_mid_download_leaves_every_replica_on_its_last_good_version(
        private_s3: S3Server, two_versions: pathlib.Path, tmp_path: pathlib.Path) -> None:
    bucket = new_bucket(private_s3)
    publish_version(private_s3, bucket, two_versions / "demo" / "1")
    # The replicas reach the store through a slow link, so a download lasts seconds.
    with relay(private_s3.ports["s3"], bytes_per_second=96 * 1024) as link, \
            replicas(private_s3, bucket, caches(tmp_path), endpoint=link.endpoint) as sidecars:
        with Callers(sidecars) as load:
            publish_version(private_s3, bucket, two_versions / "demo" / "2")
            wait_all(sidecars, lambda st: st.store.downloading_version == 2 and st.store.downloaded_bytes > 0,
                     "downloading version 2")
            private_s3.stop()
            statuses = wait_all(sidecars, lambda st: st.store.downloading_version == 0 and st.store.error != "",
                                "download given up")
        assert load.result.failures == 0, load.result.errors[:5]
        assert load.versions() == {1}
        for st in statuses:
            assert st.version == 1
            assert "store unreachable" in st.store.error, st.store.error
            assert list(st.store.cached_versions) == [1]
        for cache in caches(tmp_path):
            assert sorted(p.name for p in (cache / "demo").iterdir()) == ["1"]
        # The server comes back on the same data: the replicas finish the job on their next look.
        private_s3.start()
        statuses = wait_all(sidecars, lambda st: st.version == 2, "serving version 2 after the store returned",
                            timeout=120)
        assert all(st.store.error == "" for st in statuses)
