"""Model names, wherever they come from, follow `--model`'s rule (common/names.py).

Discovery (no `--model`) serves only directories whose names pass it and logs each one it
skips, with why: a non-UTF-8 name used to kill every worker (exit 5), and `.hidden`,
`-dash` or 200-character names were served. A manifest must name the directory's model: a
copy of demo's version under `posts-bpr` used to answer as `demo` (and its version metric
collided with the real demo's)."""

from __future__ import annotations

import json
import os
import pathlib
import shutil

import grpc
import pytest

from harness.sidecar import recommender
from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.server import running_sidecar
from tests.support.versions import copy_version

pytestmark = pytest.mark.slow

BAD_NAMES = [".hidden", "-dash", "a b", "new\nline", "x" * 200]


def _copy_model(root: pathlib.Path, name: str | bytes, manifest_name: str | None = None) -> None:
    """demo's version 1 as the only version of model `name` (bytes: a name that is not UTF-8)."""
    target = os.fsdecode(os.path.join(os.fsencode(root), os.fsencode(name)))
    shutil.copytree(root / "demo" / "1", pathlib.Path(target) / "1")
    if manifest_name is not None:
        path = pathlib.Path(target) / "1" / "manifest.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "name": manifest_name}))


def test_discovery_serves_only_well_named_models_and_logs_each_skipped_one(demo_copy: pathlib.Path) -> None:
    for name in BAD_NAMES:
        _copy_model(demo_copy, name)
    _copy_model(demo_copy, b"caf\xe9")  # Latin-1 bytes: not UTF-8
    with running_sidecar(demo_copy, "", workers=2, extra_args=["--default-model", "demo"]) as sc:
        assert sc.ready["models"] == {"demo": 1}
        skipped = [e for e in sc.log_events() if e.get("event") == "model_skipped"]
        assert len(skipped) == len(BAD_NAMES) + 1, skipped
        assert all("letters, digits" in e["reason"] for e in skipped)
        assert any("caf" in e["name"] for e in skipped) and all(e["name"].isascii() for e in skipped)
        with recommender(sc.address) as stub:
            assert stub.Recommend(reco_pb2.RecommendRequest(user_id="u1", n=3), timeout=10).model == "demo"


def test_a_manifest_naming_another_model_is_refused_naming_both(demo_copy: pathlib.Path) -> None:
    _copy_model(demo_copy, "posts-bpr", manifest_name="posts-bpr")
    # version 2 of posts-bpr: a byte copy of demo's version, manifest and all
    copy_version(demo_copy / "posts-bpr", 1, name="demo")
    args = ["--model", "demo", "--model", "posts-bpr", "--metrics-port", "0"]
    with running_sidecar(demo_copy, "demo", workers=2, extra_args=args) as sc:
        assert sc.ready["models"] == {"demo": 1, "posts-bpr": 1}  # latest skipped 2
        skipped = [e for e in sc.log_events() if e.get("event") == "version_skipped"]
        assert [(e["model"], e["version"]) for e in skipped] == [("posts-bpr", 2)]
        assert "'demo'" in skipped[0]["error"] and "'posts-bpr'" in skipped[0]["error"]
        with recommender(sc.address) as stub:
            answer = stub.Recommend(reco_pb2.RecommendRequest(model="posts-bpr", user_id="u1", n=3), timeout=10)
            assert (answer.model, answer.version) == ("posts-bpr", 1)
            with pytest.raises(grpc.RpcError) as e:
                stub.Reload(reco_pb2.ReloadRequest(model="posts-bpr", version="2"), timeout=60)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        details = e.value.details() or ""
        assert "'demo'" in details and "'posts-bpr'" in details
