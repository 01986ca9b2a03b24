from __future__ import annotations

import pathlib
import shutil
from collections.abc import Iterator

import pytest

from harness import seaweedfs
from reco_sidecar.common import logs
from tests.support.models import train_demo
from tests.support.requires import require

logs.configure("warning")


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A model root with one trained version of 'demo' (with item metadata). Read-only for tests."""
    root = tmp_path_factory.mktemp("models") / "root"
    train_demo(root)
    return root


@pytest.fixture
def demo_copy(demo_root: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    """A private copy of demo_root that a test may change (publish, corrupt)."""
    dst = tmp_path / "root"
    shutil.copytree(demo_root, dst)
    return dst


@pytest.fixture(scope="session")
def demo_version_dir(demo_root: pathlib.Path) -> pathlib.Path:
    return demo_root / "demo" / "1"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[seaweedfs.S3Server]:
    """A real S3-compatible server (SeaweedFS) on loopback, shared by the session; stopped
    (its process group killed) at the end. Tests use buckets of their own."""
    binary = seaweedfs.weed_binary()
    require(binary is not None, "SeaweedFS's weed (scripts/seaweedfs.sh builds it)")
    assert binary is not None
    with seaweedfs.running_s3(binary, tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server
