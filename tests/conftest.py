from __future__ import annotations

import pathlib
import shutil

import pytest

from reco_sidecar.common import logs
from tests.support.models import train_demo

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
