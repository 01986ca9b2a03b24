"""Reflection answers for method names too, so ghz and grpcurl work without the proto."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess

from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.support.requires import require
from tests.support.server import running_sidecar


def _ghz() -> str | None:
    found = shutil.which("ghz")
    gopath = subprocess.run(["go", "env", "GOPATH"], capture_output=True, text=True).stdout.strip() \
        if shutil.which("go") else ""
    candidate = pathlib.Path(gopath) / "bin" / "ghz" if gopath else None
    return found or (str(candidate) if candidate and candidate.exists() else None)


def test_file_containing_a_method_symbol(demo_root: pathlib.Path) -> None:
    with running_sidecar(demo_root, "demo") as sc:
        import grpc

        with grpc.insecure_channel(sc.address) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            for symbol in ("reco.v1.Recommender.Recommend", "reco.v1.Recommender", "reco.v1.RecommendRequest"):
                (resp,) = list(stub.ServerReflectionInfo(
                    iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol)])))
                assert resp.HasField("file_descriptor_response"), symbol
            (missing,) = list(stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol="reco.v1.Nope.Method")])))
            assert missing.HasField("error_response")


def test_ghz_calls_through_reflection_alone(demo_root: pathlib.Path) -> None:
    ghz = _ghz()
    require(ghz is not None, "ghz")
    assert ghz is not None
    with running_sidecar(demo_root, "demo", workers=2) as sc:
        out = subprocess.run(
            [ghz, "--insecure", "--call", "reco.v1.Recommender.Recommend", "-d",
             '{"user_id": "u{{randomInt 0 500}}", "n": 5}', "-n", "200", "-c", "4", "--connections", "2",
             "-O", "json", sc.address],
            capture_output=True, text=True, timeout=120, env={**os.environ},
        )
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout)
        assert report["count"] == 200 and report["statusCodeDistribution"] == {"OK": 200}
