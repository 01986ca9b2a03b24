"""`serve --model-store` as one replica sees it: settings it refuses, starting while the
store is down, explicit Reloads that download, refuse or roll back from the cache."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
from collections.abc import Callable

import grpc
import pytest

from harness.seaweedfs import S3Server, free_ports
from reco_sidecar.common.exit_codes import ExitCode
from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.server import Sidecar, running_sidecar
from tests.support.store import new_bucket, object_key, publish_version, remote, status, store_uri, wait_all
from tests.support.versions import copy_version


def serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reco_sidecar", "serve", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})}, check=False)


def down_endpoint() -> str:
    """An endpoint where nothing listens: the store is down."""
    return f"http://127.0.0.1:{free_ports(1)[0]}"


@pytest.mark.parametrize(("args", "message"), [
    (["--model-store", "s3:/bucket"], "--model-store: must be an s3://BUCKET[/PREFIX] URI"),
    (["--model-store", "s3://b/x"], "--model-store: 'b' is not a valid bucket name"),
    (["--model-store", "s3://bucket/x", "--version", "3"], "--version cannot be combined with --model-store"),
])
def test_inconsistent_store_settings_are_exit_code_2(args: list[str], message: str, tmp_path: pathlib.Path) -> None:
    result = serve("--model-root", str(tmp_path / "cache"), "--model", "demo", *args)
    assert result.returncode == ExitCode.CONFIG
    assert message in result.stderr and result.stdout == ""


def test_the_model_name_is_needed_with_a_store(tmp_path: pathlib.Path) -> None:
    result = serve("--model-root", str(tmp_path / "cache"), "--model-store", "s3://bucket/x")
    assert result.returncode == ExitCode.CONFIG and "--model is needed with --model-store" in result.stderr


def test_a_store_that_is_down_and_an_empty_cache_is_exit_code_4(s3_server: S3Server, tmp_path: pathlib.Path) -> None:
    result = serve("--model-root", str(tmp_path / "cache"), "--model", "demo", "--model-store", "s3://bucket/x",
                   "--port", "0", env={**s3_server.env(), "RECO_S3_ENDPOINT_URL": down_endpoint()})
    assert result.returncode == ExitCode.NO_MODEL
    assert "store unreachable" in result.stderr and "the cache holds no valid one" in result.stderr
    assert result.stdout == ""


def test_a_store_that_is_down_leaves_the_cache_serving_and_rollback_from_it(
        s3_server: S3Server, demo_root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(demo_root, cache)
    copy_version(cache / "demo", 1)
    env = {**s3_server.env(), "RECO_S3_ENDPOINT_URL": down_endpoint()}
    with running_sidecar(cache, "demo", env=env, extra_args=["--model-store", "s3://bucket/x", "--watch", "0.2"]) as sc:
        assert sc.ready["version"] == 2  # the newest cached version that verifies
        st = status(sc)
        assert "store unreachable" in st.store.error and st.store.target_version == 0
        assert list(st.store.cached_versions) == [1, 2]
        # A version in the cache needs no network.
        resp = sc.stub().Reload(reco_pb2.ReloadRequest(version="1"), timeout=60)
        assert (resp.old_version, resp.new_version) == (2, 1)
        with pytest.raises(grpc.RpcError) as e:
            sc.stub().Reload(reco_pb2.ReloadRequest(version="latest"), timeout=60)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        details = e.value.details() or ""
        assert details.startswith("version: ") and "store unreachable" in details
        assert status(sc).version == 1


def test_explicit_reloads_download_refuse_and_report(
        s3_server: S3Server, demo_root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    bucket = new_bucket(s3_server)
    local = tmp_path / "published"
    shutil.copytree(demo_root, local)
    copy_version(local / "demo", 1)
    copy_version(local / "demo", 1)
    publish_version(s3_server, bucket, local / "demo" / "1", promote=False)
    # --watch 0: nothing happens until someone asks; --store-keep 1: one version in the cache.
    args = ["--model-store", store_uri(bucket), "--store-keep", "1"]
    with running_sidecar(tmp_path / "cache", "demo", env=s3_server.env(), extra_args=args) as sc:
        assert sc.ready["version"] == 1  # no pointer: the newest published version
        publish_version(s3_server, bucket, local / "demo" / "2", promote=False)
        assert status(sc).version == 1
        resp = sc.stub().Reload(reco_pb2.ReloadRequest(version="latest"), timeout=60)
        assert (resp.old_version, resp.new_version) == (1, 2)
        st = wait_one(sc, lambda st: list(st.store.cached_versions) == [2], "version 1 evicted")
        assert st.version == 2 and st.store.target_version == 2
        with pytest.raises(grpc.RpcError) as e:
            sc.stub().Reload(reco_pb2.ReloadRequest(version="9"), timeout=60)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        details = e.value.details() or ""
        assert details.startswith("version: ") and "demo/9/ is not published" in details
        with pytest.raises(grpc.RpcError) as e:
            sc.stub().Reload(reco_pb2.ReloadRequest(version="two"), timeout=60)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # A version whose upload was damaged: refused with the reason, the old one serves.
        publish_version(s3_server, bucket, local / "demo" / "3", promote=False)
        key = object_key(bucket, 3, "item_factors.npy")
        s3_server.client().put_object(Bucket=bucket, Key=key, Body=flipped(
            s3_server.client().get_object(Bucket=bucket, Key=key)["Body"].read()))
        with pytest.raises(grpc.RpcError) as e:
            sc.stub().Reload(reco_pb2.ReloadRequest(version="3"), timeout=60)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        details = e.value.details() or ""
        assert "sha256" in details and "item_factors.npy" in details
        st = status(sc)
        assert st.version == 2 and st.store.failed_version == 3
        assert [(v.version, v.state) for v in st.versions if v.version == 3] == [(3, reco_pb2.MODEL_STATE_FAILED)]
        # The pointer says which version: an operator's rollback is honoured by "latest", and
        # a version evicted from the cache is downloaded again.
        remote(s3_server, bucket).write_pointer(1)
        resp = sc.stub().Reload(reco_pb2.ReloadRequest(version="latest"), timeout=60)
        assert resp.new_version == 1
        st = wait_one(sc, lambda st: list(st.store.cached_versions) == [1], "only version 1 cached")
        assert st.version == 1 and st.store.target_version == 1


def wait_one(sc: Sidecar, condition: Callable[[reco_pb2.GetModelStatusResponse], bool],
             what: str) -> reco_pb2.GetModelStatusResponse:
    return wait_all([sc], condition, what)[0]


def flipped(data: bytes) -> bytes:
    out = bytearray(data)
    out[-5] ^= 0xFF
    return bytes(out)


def test_a_killed_follower_is_restarted_and_serving_never_stops(
        s3_server: S3Server, demo_root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    import signal

    from harness.procs import wait_until

    bucket = new_bucket(s3_server)
    local = tmp_path / "published"
    shutil.copytree(demo_root, local)
    copy_version(local / "demo", 1)
    publish_version(s3_server, bucket, local / "demo" / "1")
    args = ["--model-store", store_uri(bucket), "--watch", "0.2"]
    with running_sidecar(tmp_path / "cache", "demo", env=s3_server.env(), extra_args=args) as sc:

        def followers() -> list[int]:
            return [int(e["follower_pid"]) for e in sc.log_events() if e.get("event") == "store_follower_start"]

        first = followers()
        assert len(first) == 1 and first[0] in sc.tree_pids()
        os.kill(first[0], signal.SIGKILL)
        wait_until(lambda: len(followers()) == 2, 30, "a second follower started")
        assert status(sc).version == 1  # the workers never noticed
        # The new follower does the job: a published version still arrives.
        publish_version(s3_server, bucket, local / "demo" / "2")
        wait_one(sc, lambda st: st.version == 2, "serving version 2 through the restarted follower")
        assert any(e.get("event") == "store_follower_exited" for e in sc.log_events())


def test_sighup_looks_at_the_store_now(s3_server: S3Server, demo_root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    import signal

    bucket = new_bucket(s3_server)
    local = tmp_path / "published"
    shutil.copytree(demo_root, local)
    copy_version(local / "demo", 1)
    publish_version(s3_server, bucket, local / "demo" / "1")
    # --watch 0: only the signal makes it look.
    with running_sidecar(tmp_path / "cache", "demo", env=s3_server.env(),
                         extra_args=["--model-store", store_uri(bucket)]) as sc:
        publish_version(s3_server, bucket, local / "demo" / "2")
        assert status(sc).version == 1
        os.kill(sc.proc.pid, signal.SIGHUP)
        st = wait_one(sc, lambda st: st.version == 2, "serving version 2 after SIGHUP")
        assert st.store.target_version == 2
