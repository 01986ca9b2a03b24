"""Downloading from a real S3 server (SeaweedFS) into the cache: verified against the
manifest, which is verified against the marker; a failure leaves nothing visible; the
cache keeps the last N versions and never the one serving."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from harness.seaweedfs import S3Server
from reco_sidecar.artifact import layout, loader, version_dirs
from reco_sidecar.common.errors import ErrorKind
from reco_sidecar.store import cache
from reco_sidecar.store.download import download
from reco_sidecar.store.errors import IntegrityError, NotPublished, StoreError
from reco_sidecar.store.follower import Follower
from reco_sidecar.store.status import StoreStatus
from tests.support.store import new_bucket, object_key, publish_version, remote
from tests.support.versions import copy_version


@pytest.fixture
def published(s3_server: S3Server, demo_root: pathlib.Path) -> str:
    bucket = new_bucket(s3_server)
    publish_version(s3_server, bucket, demo_root / "demo" / "1")
    return bucket


def visible(model_dir: pathlib.Path) -> list[str]:
    return sorted(p.name for p in model_dir.iterdir()) if model_dir.exists() else []


def test_a_download_is_complete_and_verified(s3_server: S3Server, published: str, tmp_path: pathlib.Path,
                                             demo_root: pathlib.Path) -> None:
    progress: list[tuple[int, int]] = []
    path = download(remote(s3_server, published), 1, tmp_path / "demo", progress=lambda d, t: progress.append((d, t)))
    assert path == tmp_path / "demo" / "1" and visible(tmp_path / "demo") == ["1"]
    assert loader.verify(path).version == 1
    for f in (demo_root / "demo" / "1").iterdir():
        assert (path / f.name).read_bytes() == f.read_bytes()
    total = sum(f.stat().st_size for f in path.iterdir())
    assert progress[-1] == (total, total)


def put(s3: S3Server, bucket: str, name: str, data: bytes) -> None:
    s3.client().put_object(Bucket=bucket, Key=object_key(bucket, 1, name), Body=data)


def get(s3: S3Server, bucket: str, name: str) -> bytes:
    body: bytes = s3.client().get_object(Bucket=bucket, Key=object_key(bucket, 1, name))["Body"].read()
    return body


def flipped(data: bytes) -> bytes:
    out = bytearray(data)
    out[len(out) // 2] ^= 0xFF
    return bytes(out)


@pytest.mark.parametrize(("damage", "error", "message"), [
    ("flipped byte", IntegrityError, r"sha256 \w+ differs from the manifest's \w+ \(items.annoy\)"),
    ("truncated", IntegrityError, r"the store holds \d+ bytes, the manifest says \d+ \(items.annoy\)"),
    ("longer", IntegrityError, r"the store holds \d+ bytes, the manifest says \d+ \(items.annoy\)"),
    ("manifest replaced", IntegrityError, r"differs from the marker's .* \(manifest.json\)|the marker says"),
    ("marker of another version", StoreError, "is a marker for 'demo' version 7"),
    ("marker garbled", StoreError, "not a valid marker"),
    ("marker claims a huge manifest", StoreError, r"claims a manifest of 17179869184 bytes"),
    ("marker removed", NotPublished, "is not published"),
])
def test_a_damaged_store_is_refused_and_leaves_nothing(
        s3_server: S3Server, published: str, tmp_path: pathlib.Path,
        damage: str, error: type[Exception], message: str) -> None:
    bucket = published
    if damage == "flipped byte":
        put(s3_server, bucket, layout.ANN_INDEX, flipped(get(s3_server, bucket, layout.ANN_INDEX)))
    elif damage == "truncated":
        data = get(s3_server, bucket, layout.ANN_INDEX)
        put(s3_server, bucket, layout.ANN_INDEX, data[: len(data) // 2])
    elif damage == "longer":
        put(s3_server, bucket, layout.ANN_INDEX, get(s3_server, bucket, layout.ANN_INDEX) + b"\0" * 16)
    elif damage == "manifest replaced":
        manifest: dict[str, Any] = json.loads(get(s3_server, bucket, layout.MANIFEST))
        manifest["metrics"] = {"ndcg_at_10": 0.99}
        put(s3_server, bucket, layout.MANIFEST, json.dumps(manifest).encode())
    elif damage == "marker of another version":
        marker = json.loads(get(s3_server, bucket, "PUBLISHED"))
        put(s3_server, bucket, "PUBLISHED", json.dumps({**marker, "version": 7}).encode())
    elif damage == "marker claims a huge manifest":
        marker = json.loads(get(s3_server, bucket, "PUBLISHED"))
        put(s3_server, bucket, "PUBLISHED", json.dumps({**marker, "manifest_bytes": 16 << 30}).encode())
    elif damage == "marker garbled":
        put(s3_server, bucket, "PUBLISHED", b"{not json")
    else:
        s3_server.client().delete_object(Bucket=bucket, Key=object_key(bucket, 1, "PUBLISHED"))
    with pytest.raises(error, match=message):
        download(remote(s3_server, bucket), 1, tmp_path / "demo")
    assert visible(tmp_path / "demo") == []


@pytest.mark.parametrize("text", ["latest", "007", "0", "²"])
def test_a_garbled_pointer_is_reported(s3_server: S3Server, published: str, text: str) -> None:
    """The store names versions by the one rule every other part uses: `007` is no version."""
    model = remote(s3_server, published)
    s3_server.client().put_object(Bucket=published, Key="models/uro/demo/CURRENT", Body=f"{text}\n".encode())
    with pytest.raises(StoreError, match=f"CURRENT holds '{text}', not a version number"):
        model.target()


def test_a_version_folder_with_a_leading_zero_is_no_version(s3_server: S3Server, published: str) -> None:
    model = remote(s3_server, published)
    s3_server.client().put_object(Bucket=published, Key="models/uro/demo/007/PUBLISHED", Body=b"{}")
    assert model.published_versions() == [1]


def test_the_follower_reports_a_failure_with_its_reason_and_retries_only_when_asked(
        s3_server: S3Server, published: str, tmp_path: pathlib.Path) -> None:
    statuses: list[StoreStatus] = []
    follower = Follower(remote(s3_server, published), tmp_path, keep=3, emit_status=statuses.append)
    assert follower.sync(None, explicit=False).version == 1
    put(s3_server, published, layout.ITEM_FACTORS, b"x")  # damaged in the store after publishing
    (tmp_path / "demo" / "1").rename(tmp_path / "demo" / ".gone")  # and no longer in the cache
    outcome = follower.sync(None, explicit=False)
    assert outcome.version is None and outcome.kind is ErrorKind.FAILED_PRECONDITION
    assert "item_factors.npy" in outcome.message and statuses[-1].failed_version == 1
    assert statuses[-1].error == outcome.message
    # The watch does not hammer a version that failed for good…
    assert follower.sync(None, explicit=False).message == outcome.message
    # …an explicit request tries again.
    assert follower.sync(1, explicit=True).kind is ErrorKind.FAILED_PRECONDITION


def test_the_cache_keeps_the_most_recently_used_and_the_protected(
        demo_root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    import os
    import shutil

    root = tmp_path / "root"
    shutil.copytree(demo_root, root)
    model_dir = root / "demo"
    for _ in range(4):
        copy_version(model_dir, 1)
    assert version_dirs.list_versions(model_dir) == [1, 2, 3, 4, 5]
    for used_at, version in enumerate([1, 4, 3, 5, 2]):  # oldest use first
        os.utime(model_dir / str(version), ns=(used_at * 10**9, used_at * 10**9))
    assert cache.prune(model_dir, keep=2, protect={1}) == [3, 4]
    assert version_dirs.list_versions(model_dir) == [1, 2, 5]
    assert visible(model_dir) == ["1", "2", "5"]  # nothing hidden left behind
    cache.touch(model_dir, 5)
    assert cache.prune(model_dir, keep=1, protect=()) == [1, 2]


def test_a_partial_download_left_by_a_killed_process_is_cleaned(
        s3_server: S3Server, published: str, tmp_path: pathlib.Path) -> None:
    leftover = tmp_path / "demo" / ".tmp-download-1-deadbeef"
    leftover.mkdir(parents=True)
    (leftover / "item_factors.npy").write_bytes(b"half")
    Follower(remote(s3_server, published), tmp_path, keep=3, emit_status=lambda _: None)
    assert visible(tmp_path / "demo") == []
