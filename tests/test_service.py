"""The Recommender's status codes and messages, with small limits: what one worker answers
through its real gRPC server in this process; Reload, a transaction the supervisor runs
across the workers, through a real process tree."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message

from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.server import InProcess, Sidecar, in_process_sidecar, running_sidecar
from tests.support.versions import copy_version, flip_byte

LIMITS = ["--max-n", "50", "--max-offset", "100", "--max-ids", "10", "--max-batch-users", "100",
          "--batch-chunk", "16", "--jsonld-item-iri", "urn:item:{id}"]


Harness = tuple[Sidecar, pathlib.Path]


@pytest.fixture(scope="module")
def server(demo_root: pathlib.Path) -> Iterator[InProcess]:
    with in_process_sidecar(demo_root, "demo", extra_args=["--version", "1", *LIMITS]) as s:
        yield s


@pytest.fixture
def sidecar(demo_copy: pathlib.Path) -> Iterator[Harness]:
    with running_sidecar(demo_copy, "demo", extra_args=["--version", "1", *LIMITS]) as sc:
        yield sc, demo_copy


def code_of(call: Any, request: Message) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as e:
        result = call(request, timeout=30)
        if not isinstance(result, reco_pb2.RecommendResponse | reco_pb2.ReloadResponse):
            list(result)
    return e.value.code(), e.value.details() or ""


def test_recommend_ok(server: InProcess) -> None:
    resp = server.stub().Recommend(reco_pb2.RecommendRequest(user_id="u0000001", n=4), timeout=30)
    assert len(resp.items) == 4 and resp.version == 1
    assert resp.jsonld.startswith('{"@context"') and "urn:item:" in resp.jsonld


@pytest.mark.parametrize(("request_", "code", "prefix"), [
    (reco_pb2.RecommendRequest(user_id="u0000001", n=51), grpc.StatusCode.INVALID_ARGUMENT,
     "n: must be between 1 and 50"),
    (reco_pb2.RecommendRequest(user_id="u0000001", n=5, offset=101), grpc.StatusCode.INVALID_ARGUMENT, "offset:"),
    (reco_pb2.RecommendRequest(user_id="u0000001", n=5, recent_item_ids=["a"] * 11),
     grpc.StatusCode.RESOURCE_EXHAUSTED, "recent_item_ids: 11 ids, at most 10"),
    (reco_pb2.RecommendRequest(user_id="zz", n=5, disable_fallback=True), grpc.StatusCode.NOT_FOUND,
     "user_id: unknown user 'zz'"),
])
def test_recommend_errors(server: InProcess, request_: Message, code: grpc.StatusCode, prefix: str) -> None:
    got, details = code_of(server.stub().Recommend, request_)
    assert got == code and details.startswith(prefix), details


def test_batch_too_many_users_is_resource_exhausted(server: InProcess) -> None:
    code, details = code_of(server.stub().BatchRecommend,
                            reco_pb2.BatchRecommendRequest(user_ids=["u"] * 101, n=3))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and details.startswith("user_ids:")


def test_batch_streams_one_response_per_user(server: InProcess) -> None:
    users = [f"u{i:07d}" for i in range(40)]
    got = list(server.stub().BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=users, n=3), timeout=30))
    assert [r.index for r in got] == list(range(40)) and [r.user_id for r in got] == users


def test_reload_to_a_corrupt_version_is_failed_precondition_and_keeps_serving(sidecar: Harness) -> None:
    sc, root = sidecar
    bad = copy_version(root / "demo", 1)
    flip_byte(root / "demo" / str(bad) / "user_factors.npy")
    code, details = code_of(sc.stub().Reload, reco_pb2.ReloadRequest(version=str(bad)))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "sha256" in details
    status = sc.stub().GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=30)
    assert status.version == 1


def test_reload_to_a_good_version(sidecar: Harness) -> None:
    sc, root = sidecar
    good = copy_version(root / "demo", 1)
    resp = sc.stub().Reload(reco_pb2.ReloadRequest(version="latest"), timeout=60)
    assert (resp.old_version, resp.new_version) == (1, good)
    assert sc.stub().Recommend(reco_pb2.RecommendRequest(user_id="u0000001", n=2), timeout=30).version == good
