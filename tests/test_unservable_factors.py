"""A version whose factors hold NaN is refused by the supervisor's verification, wherever it
is met (docs/model-format.md, docs/operations.md: failure modes): `latest` skips it at start
and after a restart, an experiments arm pinning it is a configuration error naming the
field, and a store replica whose CURRENT names it starts on its cache. Only the workers'
full open used to look at the numbers, so each of these was a boot loop ending in exit 5."""

from __future__ import annotations

import hashlib
import json
import pathlib
import shutil

import numpy as np
import pytest

from harness.procs import run_bounded, wait_until
from harness.seaweedfs import S3Server
from harness.sidecar import command, recommender
from reco_sidecar.artifact import version_dirs
from reco_sidecar.common.exit_codes import ExitCode
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.store.remote import Marker, now
from tests.support.server import running_sidecar
from tests.support.store import new_bucket, object_key, publish_version, remote, store_uri
from tests.support.versions import copy_version, resign

pytestmark = pytest.mark.slow


def publish_nan_users(model_dir: pathlib.Path, src: int = 1) -> int:
    """A copy of `src` with one user factor NaN and a manifest that vouches for the bytes,
    built under a hidden name and renamed into place (a watcher never sees it half-made)."""
    version = (version_dirs.latest_version(model_dir) or 0) + 1
    building = model_dir / f".building-{version}"
    copy_version(model_dir, src, version, directory=building.name)
    path = building / "user_factors.npy"
    factors = np.load(path)
    factors[7, 0] = np.nan
    np.save(path, factors)
    resign(building, "user_factors.npy")
    building.rename(model_dir / str(version))
    return version


def _failed(address: str) -> dict[int, str]:
    with recommender(address) as stub:
        st = stub.GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=5)
    return {v.version: v.error for v in st.versions if v.state == reco_pb2.MODEL_STATE_FAILED}


def test_latest_skips_a_nan_version_at_start_and_again_after_the_watch_failed_it(demo_copy: pathlib.Path) -> None:
    model_dir = demo_copy / "demo"
    with running_sidecar(demo_copy, "demo", workers=2, extra_args=["--watch", "0.2"]) as sc:
        assert sc.ready["version"] == 1
        bad = publish_nan_users(model_dir)
        wait_until(lambda: bad in _failed(sc.address), 60, "the watch to mark the NaN version FAILED")
        assert "NaN" in _failed(sc.address)[bad]
    # The restart meets the same newest version: it must be skipped, not crash every worker.
    with running_sidecar(demo_copy, "demo", workers=2) as sc:
        assert sc.ready["version"] == 1
        for address in sc.worker_addresses:
            failed = _failed(address)
            assert set(failed) == {bad} and "user_factors.npy" in failed[bad] and "NaN" in failed[bad]


def test_an_arm_pinning_a_nan_version_is_exit_2_naming_the_field(demo_copy: pathlib.Path,
                                                                tmp_path: pathlib.Path) -> None:
    bad = publish_nan_users(demo_copy / "demo")
    experiments = tmp_path / "experiments.json"
    experiments.write_text(json.dumps({"experiments": [{"name": "e", "salt": "s", "share": 1.0, "arms": [
        {"name": "control", "model": "demo", "weight": 1},
        {"name": "nan", "model": "demo", "version": bad, "weight": 1}]}]}))
    code, out, err, _ = run_bounded(command(demo_copy, "demo", 2, ["--experiments", str(experiments)], version=1),
                                    120)
    assert code == ExitCode.CONFIG, err[-2000:]
    assert "experiments[0].arms[1].version" in err and "NaN" in err and out == ""


def test_a_replica_whose_store_points_at_a_nan_version_starts_on_its_cache(
        s3_server: S3Server, demo_root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    local = tmp_path / "local"
    shutil.copytree(demo_root, local)
    bucket = new_bucket(s3_server)
    publish_version(s3_server, bucket, local / "demo" / "1")
    # Our publisher verifies (NaN included) before uploading; an older or another publisher
    # may not: version 2 is published good, then its user factors and manifest replaced and
    # its marker rewritten to vouch for them.
    good = copy_version(local / "demo", 1)
    publish_version(s3_server, bucket, local / "demo" / str(good))
    shutil.rmtree(local / "demo" / str(good))
    bad = publish_nan_users(local / "demo")
    assert bad == good
    client, model = s3_server.client(), remote(s3_server, bucket)
    for name in ("user_factors.npy", "manifest.json"):
        client.upload_file(str(local / "demo" / str(bad) / name), bucket, object_key(bucket, bad, name))
    client.delete_object(Bucket=bucket, Key=object_key(bucket, bad, "PUBLISHED"))
    manifest = (local / "demo" / str(bad) / "manifest.json").read_bytes()
    model.write_marker(Marker(bad, hashlib.sha256(manifest).hexdigest(), len(manifest), now()))
    assert model.target() == bad
    cache = tmp_path / "cache"
    (cache / "demo").mkdir(parents=True)
    shutil.copytree(local / "demo" / "1", cache / "demo" / "1")  # what this replica served before
    env = {**s3_server.env(), "RECO_S3_ENDPOINT_URL": s3_server.endpoint}
    with running_sidecar(cache, "demo", workers=2, env=env,
                         extra_args=["--model-store", store_uri(bucket), "--watch", "0.5"]) as sc:
        assert sc.ready["version"] == 1
        with recommender(sc.address) as stub:
            st = stub.GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=5)
        assert st.version == 1 and st.store.target_version == bad

