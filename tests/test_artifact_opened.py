"""Workers verify exactly the bytes they map: a file swapped by rename between the
supervisor's check and a worker's load is never served. Also the refusals that need no
reading at all: a size the counts cannot explain, a FIFO, a version directory leaving the root."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from reco_sidecar.artifact import layout, loader
from reco_sidecar.common.errors import ArtifactError
from reco_sidecar.common.exit_codes import ExitCode
from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.server import command, running_sidecar, stop_tree
from tests.support.versions import copy_version, resign
from tests.test_artifact_loader import serve_exit


class Swapper(threading.Thread):
    """Replaces `target` by rename, over and over: mostly the good file, briefly a bad one
    (same size and shape, different rows), as a careless sync job or an attacker would."""

    def __init__(self, target: pathlib.Path, good: pathlib.Path, bad: pathlib.Path) -> None:
        super().__init__(daemon=True)
        self.target, self.good, self.bad = target, good, bad
        self.stop = threading.Event()
        self.swaps = 0

    def put(self, src: pathlib.Path) -> None:
        tmp = self.target.with_name(".swap-tmp")
        tmp.unlink(missing_ok=True)
        os.link(src, tmp)
        os.rename(tmp, self.target)
        self.swaps += 1

    def run(self) -> None:
        while not self.stop.is_set():
            self.put(self.bad)
            self.stop.wait(0.004)
            self.put(self.good)
            self.stop.wait(0.02)


@pytest.fixture
def swapped_version(demo_copy: pathlib.Path) -> Iterator[tuple[pathlib.Path, np.ndarray, np.ndarray]]:
    """Version 2, a copy of 1 whose user_factors.npy a Swapper keeps replacing by rename."""
    model_dir = demo_copy / "demo"
    v2 = model_dir / str(copy_version(model_dir, 1))
    stash = demo_copy / "stash"
    stash.mkdir()
    good_factors = np.load(v2 / layout.USER_FACTORS)
    shutil.copy(v2 / layout.USER_FACTORS, stash / "good.npy")
    np.save(stash / "bad.npy", np.roll(good_factors, 1, axis=0))
    swapper = Swapper(v2 / layout.USER_FACTORS, stash / "good.npy", stash / "bad.npy")
    swapper.start()
    try:
        yield demo_copy, good_factors, np.load(v2 / layout.ITEM_FACTORS)
    finally:
        swapper.stop.set()
        swapper.join()
    assert swapper.swaps > 10


def test_a_file_swapped_by_rename_during_reloads_is_never_served(
        swapped_version: tuple[pathlib.Path, np.ndarray, np.ndarray]) -> None:
    root, user_factors, item_factors = swapped_version
    users = [0, 7, 100, 301, 594]
    ids = loader.open_model(root / "demo" / "1")
    user_ids = [ids.users.ids[u] for u in users]
    item_row = {item: row for row, item in enumerate(ids.items.ids)}
    checked = unverified = refused = 0
    with running_sidecar(root, "demo", workers=2, extra_args=["--version", "1"]) as sc:
        admin = sc.stub()
        workers = [sc.stub(a) for a in sc.worker_addresses]
        for _ in range(300):
            if checked >= 10:
                break
            admin.Reload(reco_pb2.ReloadRequest(version="1"), timeout=60)
            try:
                resp = admin.Reload(reco_pb2.ReloadRequest(version="2"), timeout=60)
            except grpc.RpcError as e:
                # refusing the swapped file is right; nothing of version 2 serves then
                assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e.details()
                refused += 1
                continue
            assert resp.workers == 2
            for stub in workers:
                for u, uid in zip(users, user_ids, strict=True):
                    got = stub.Recommend(reco_pb2.RecommendRequest(user_id=uid, n=10), timeout=10)
                    assert got.version == 2
                    rows = [item_row[it.item_id] for it in got.items]
                    want = item_factors[rows] @ user_factors[u]
                    scores = np.array([it.score for it in got.items])
                    if not np.allclose(scores, want, rtol=1e-4, atol=1e-4):
                        unverified += 1
            checked += 1
    assert checked >= 10, f"only {checked} reloads to version 2 succeeded ({refused} refused)"
    assert unverified == 0, f"{unverified} answers came from factors nobody verified"


def test_a_manifest_vouching_for_a_huge_file_is_refused_by_size_before_reading(demo_copy: pathlib.Path) -> None:
    version = demo_copy / "demo" / "1"
    path = version / layout.USER_FACTORS
    path.unlink()
    with path.open("wb") as f:
        f.truncate(50 * 10**9)  # sparse: 50 GB that hashing would take minutes to read
    manifest_path = version / layout.MANIFEST
    raw = json.loads(manifest_path.read_text())
    raw["files"][layout.USER_FACTORS]["bytes"] = 50 * 10**9
    manifest_path.write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="more than the 103") as e:
        loader.verify(version)
    assert e.value.path.endswith(layout.USER_FACTORS)
    code, err = serve_exit(demo_copy)
    assert code == ExitCode.NO_MODEL and "manifest says 50000000000 bytes, more than" in err


def test_a_fifo_named_like_a_model_file_is_refused_without_blocking(demo_copy: pathlib.Path) -> None:
    version = demo_copy / "demo" / "1"
    (version / layout.SEEN_INDICES).unlink()
    os.mkfifo(version / layout.SEEN_INDICES)

    def hung(_signum: int, _frame: object) -> None:
        raise TimeoutError("opening the FIFO blocked")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        with pytest.raises(ArtifactError, match="is not a regular file"):
            loader.verify(version)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def publish_outside(model_dir: pathlib.Path, outside: pathlib.Path) -> None:
    """Version 2: a copy of 1 kept in `outside`, linked in as <model>/2."""
    shutil.copytree(model_dir / "1", outside)
    raw = (outside / layout.MANIFEST).read_text()
    (outside / layout.MANIFEST).write_text(raw.replace('"version": 1', '"version": 2'))
    (model_dir / "2").symlink_to(outside)


def test_a_version_directory_symlinked_outside_the_root_is_refused(demo_copy: pathlib.Path,
                                                                   tmp_path: pathlib.Path) -> None:
    model_dir = demo_copy / "demo"
    publish_outside(model_dir, tmp_path / "outside")
    with pytest.raises(ArtifactError, match="resolves outside the model root"):
        loader.verify(model_dir / "2")
    with pytest.raises(ArtifactError, match="resolves outside the model root"):
        loader.open_model(model_dir / "2")
    # the same directory moved inside the root may be linked as a version
    (model_dir / "2").unlink()
    (tmp_path / "outside").rename(demo_copy / "store-2")
    (model_dir / "2").symlink_to(demo_copy / "store-2")
    assert loader.verify(model_dir / "2").version == 2


def test_serve_latest_skips_a_version_directory_symlinked_outside_the_root(demo_copy: pathlib.Path,
                                                                         tmp_path: pathlib.Path) -> None:
    publish_outside(demo_copy / "demo", tmp_path / "outside")
    with running_sidecar(demo_copy, "demo", extra_args=["--version", "latest"]) as sc:
        assert sc.stub().GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=10).version == 1
        skipped = [e for e in sc.log_events() if e.get("event") == "version_skipped"]
        assert [e["version"] for e in skipped] == [2] and "outside the model root" in skipped[0]["error"]
    code, err = serve_exit_version(demo_copy, "2")
    assert code == ExitCode.NO_MODEL and "resolves outside the model root" in err


def serve_exit_version(root: pathlib.Path, version: str) -> tuple[int, str]:
    proc = subprocess.Popen(command(root, "demo", 1, ["--version", version]), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        stop_tree(proc)
    return proc.returncode, err.decode()


def test_nan_refusal_names_the_user_or_the_item_file(demo_copy: pathlib.Path) -> None:
    version = demo_copy / "demo" / "1"
    for name in (layout.USER_FACTORS, layout.ITEM_FACTORS):
        original = (version / name).read_bytes()
        factors = np.load(version / name)
        factors[2, 1] = np.inf
        np.save(version / name, factors)
        resign(version, name)
        with pytest.raises(ArtifactError, match="factors contain NaN or infinity") as e:
            loader.open_model(version)
        assert e.value.path == str(version / name)
        (version / name).write_bytes(original)
        resign(version, name)
