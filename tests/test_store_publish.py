"""Publishing to a real S3 server (SeaweedFS): `train --model-store` and
`import-librecommender --model-store` upload every file, then the marker; numbers continue
above the store's; a version is immutable; `--promote` and `promote` move CURRENT."""

from __future__ import annotations

import json
import pathlib
import shutil

import pytest

from harness.seaweedfs import S3Server
from reco_sidecar.artifact import layout
from reco_sidecar.cli import main
from reco_sidecar.common.exit_codes import ExitCode
from reco_sidecar.store.errors import StoreError
from reco_sidecar.store.location import CLAIM, MARKER
from tests.support.store import new_bucket, publish_version, remote, store_uri
from tests.support.versions import flip_byte

TRAIN = ["train", "--name", "demo", "--factors", "8", "--iterations", "3", "--holdout", "0",
         "--exact-neighbours", "0", "--ann-trees", "5"]


@pytest.fixture
def aws_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials and endpoint reach the commands through the standard variables only."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def interactions(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    from reco_sidecar.training import demo_data

    csv, _ = demo_data.write(demo_data.DemoSpec(users=200, items=120, interactions=3000, clusters=3, seed=1),
                             tmp_path_factory.mktemp("data") / "interactions.csv")
    return csv


def keys(s3: S3Server, bucket: str) -> list[str]:
    listed = s3.client().list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_train_publishes_every_file_and_the_marker_and_promotes(
        s3_server: S3Server, aws_env: None, interactions: pathlib.Path, tmp_path: pathlib.Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    bucket = new_bucket(s3_server)
    root = tmp_path / "root"
    assert main([*TRAIN, "--interactions", str(interactions), "--model-root", str(root),
                 "--model-store", store_uri(bucket), "--promote"]) == 0
    version_dir = root / "demo" / "1"
    manifest = json.loads((version_dir / layout.MANIFEST).read_text())
    expected = sorted([*manifest["files"], layout.MANIFEST, CLAIM, MARKER])
    assert keys(s3_server, bucket) == sorted(
        [f"models/uro/demo/1/{name}" for name in expected] + ["models/uro/demo/CURRENT"])
    model = remote(s3_server, bucket)
    assert model.published_versions() == [1] and model.pointer() == 1
    marker = model.marker(1)
    assert marker is not None and marker.manifest_bytes == (version_dir / layout.MANIFEST).stat().st_size
    # The uploaded bytes are the local ones.
    body = s3_server.client().get_object(Bucket=bucket, Key="models/uro/demo/1/item_factors.npy")["Body"].read()
    assert body == (version_dir / "item_factors.npy").read_bytes()
    assert f"{store_uri(bucket)}/demo/1/" in capsys.readouterr().err


def test_a_new_trainer_numbers_above_the_store_and_leaves_the_pointer_alone(
        s3_server: S3Server, aws_env: None, interactions: pathlib.Path, tmp_path: pathlib.Path,
        demo_root: pathlib.Path) -> None:
    bucket = new_bucket(s3_server)
    publish_version(s3_server, bucket, demo_root / "demo" / "1")
    # Another node, with an empty model root, trains next: it must not reuse number 1.
    root = tmp_path / "elsewhere"
    assert main([*TRAIN, "--interactions", str(interactions), "--model-root", str(root),
                 "--model-store", store_uri(bucket)]) == 0
    assert sorted(p.name for p in (root / "demo").iterdir()) == ["2"]
    model = remote(s3_server, bucket)
    assert model.published_versions() == [1, 2]
    assert model.pointer() == 1  # published, not promoted


def test_import_librecommender_publishes_too(s3_server: S3Server, aws_env: None, tmp_path: pathlib.Path) -> None:
    source = pathlib.Path(__file__).resolve().parent / "fixtures" / "librecommender"
    bucket = new_bucket(s3_server)
    root = tmp_path / "root"
    assert main(["import-librecommender", "--model-root", str(root), "--name", "demo",
                 "--path", str(source / "als_model_save"), "--model-name", "als",
                 "--model-store", store_uri(bucket), "--promote"]) == 0
    assert remote(s3_server, bucket).pointer() == 1


def test_a_published_version_is_immutable(s3_server: S3Server, demo_root: pathlib.Path) -> None:
    bucket = new_bucket(s3_server)
    publish_version(s3_server, bucket, demo_root / "demo" / "1")
    with pytest.raises(StoreError, match="already published"):
        publish_version(s3_server, bucket, demo_root / "demo" / "1")


def test_two_publishers_of_one_number_cannot_both_upload(s3_server: S3Server, demo_root: pathlib.Path) -> None:
    """The claim is a conditional write: the second publisher stops before uploading a byte."""
    bucket = new_bucket(s3_server)
    remote(s3_server, bucket).claim(1, "the other trainer")
    with pytest.raises(StoreError, match="demo/1/ is taken by another publisher"):
        publish_version(s3_server, bucket, demo_root / "demo" / "1")
    assert keys(s3_server, bucket) == ["models/uro/demo/1/UPLOADING"]


def test_numbering_skips_an_abandoned_upload(
        s3_server: S3Server, aws_env: None, interactions: pathlib.Path, tmp_path: pathlib.Path) -> None:
    bucket = new_bucket(s3_server)
    remote(s3_server, bucket).claim(1, "a trainer that crashed")
    root = tmp_path / "root"
    assert main([*TRAIN, "--interactions", str(interactions), "--model-root", str(root),
                 "--model-store", store_uri(bucket), "--promote"]) == 0
    assert remote(s3_server, bucket).published_versions() == [2]
    assert remote(s3_server, bucket).pointer() == 2


def test_a_corrupt_local_version_is_not_published(s3_server: S3Server, demo_copy: pathlib.Path) -> None:
    bucket = new_bucket(s3_server)
    flip_byte(demo_copy / "demo" / "1" / "item_factors.npy")
    with pytest.raises(Exception, match="sha256"):
        publish_version(s3_server, bucket, demo_copy / "demo" / "1")
    assert keys(s3_server, bucket) == []


def test_files_without_the_marker_are_not_a_version(s3_server: S3Server, demo_root: pathlib.Path) -> None:
    """An upload that died before its marker: invisible to followers and to numbering."""
    bucket = new_bucket(s3_server)
    client = s3_server.client()
    for path in sorted((demo_root / "demo" / "1").iterdir()):
        client.upload_file(str(path), bucket, f"models/uro/demo/1/{path.name}")
    model = remote(s3_server, bucket)
    assert model.published_versions() == [] and model.target() is None
    with pytest.raises(StoreError, match="not published"):
        model.write_pointer(1)


def test_promote_command_moves_the_pointer_and_refuses_unpublished_versions(
        s3_server: S3Server, aws_env: None, demo_root: pathlib.Path, tmp_path: pathlib.Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    bucket = new_bucket(s3_server)
    second = tmp_path / "root"
    shutil.copytree(demo_root, second)
    from tests.support.versions import copy_version

    copy_version(second / "demo", 1)
    publish_version(s3_server, bucket, second / "demo" / "1")
    publish_version(s3_server, bucket, second / "demo" / "2")
    assert remote(s3_server, bucket).pointer() == 2
    assert main(["promote", "--model-store", store_uri(bucket), "--name", "demo", "--version", "1"]) == 0
    assert capsys.readouterr().out.strip().endswith("CURRENT: 2 -> 1")
    assert remote(s3_server, bucket).pointer() == 1
    assert main(["promote", "--model-store", store_uri(bucket), "--name", "demo", "--version", "7"]) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert "demo/7/" in err and "not published" in err
    assert remote(s3_server, bucket).pointer() == 1


@pytest.mark.parametrize(("uri", "message"), [
    ("http://bucket/x", "must be an s3://"),
    ("s3://Bad_Bucket/x", "not a valid bucket name"),
    ("s3://bucket/../x", "must not contain"),
])
def test_a_bad_store_uri_is_refused_before_training(
        uri: str, message: str, interactions: pathlib.Path, tmp_path: pathlib.Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    assert main([*TRAIN, "--interactions", str(interactions), "--model-root", str(root),
                 "--model-store", uri]) == ExitCode.CONFIG
    assert message in capsys.readouterr().err
    assert not root.exists()


def test_promote_without_a_store_is_refused(interactions: pathlib.Path, tmp_path: pathlib.Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*TRAIN, "--interactions", str(interactions), "--model-root", str(tmp_path / "r"),
                 "--promote"]) == ExitCode.CONFIG
    assert "--promote needs --model-store" in capsys.readouterr().err
