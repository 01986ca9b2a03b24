"""Servicer unit tests with grpcio-testing: status codes and messages without a network."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message

from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.servicer import SERVICE, servicer, unary
from tests.support.versions import copy_version, flip_byte

# The grpcio-testing server and the demo model's root.
Harness = tuple[Any, pathlib.Path]


@pytest.fixture
def harness(demo_copy: pathlib.Path) -> Iterator[Harness]:
    with servicer(demo_copy, "demo") as server:
        yield server, demo_copy


def test_recommend_ok(harness: Harness) -> None:
    resp, code, _ = unary(harness[0], "Recommend", reco_pb2.RecommendRequest(user_id="u0000001", n=4))
    assert code == grpc.StatusCode.OK and len(resp.items) == 4 and resp.version == 1
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
def test_recommend_errors(harness: Harness, request_: Message, code: grpc.StatusCode,
                          prefix: str) -> None:
    _, got, details = unary(harness[0], "Recommend", request_)
    assert got == code and details.startswith(prefix), details


def test_batch_too_many_users_is_resource_exhausted(harness: Harness) -> None:
    rpc = harness[0].invoke_unary_stream(SERVICE.methods_by_name["BatchRecommend"], (),
                                         reco_pb2.BatchRecommendRequest(user_ids=["u"] * 101, n=3), None)
    _, code, details = rpc.termination()
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and details.startswith("user_ids:")


def test_batch_streams_one_response_per_user(harness: Harness) -> None:
    users = [f"u{i:07d}" for i in range(40)]
    rpc = harness[0].invoke_unary_stream(SERVICE.methods_by_name["BatchRecommend"], (),
                                         reco_pb2.BatchRecommendRequest(user_ids=users, n=3), None)
    got = []
    while True:
        try:
            got.append(rpc.take_response())
        except ValueError:
            break
        if len(got) == len(users):
            break
    _, code, _ = rpc.termination()
    assert code == grpc.StatusCode.OK and [r.index for r in got] == list(range(40))


def test_reload_to_a_corrupt_version_is_failed_precondition_and_keeps_serving(harness: Harness) -> None:
    server, root = harness
    bad = copy_version(root / "demo", 1)
    flip_byte(root / "demo" / str(bad) / "user_factors.npy")
    _, code, details = unary(server, "Reload", reco_pb2.ReloadRequest(version=str(bad)))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "sha256" in details
    status, code, _ = unary(server, "GetModelStatus", reco_pb2.GetModelStatusRequest())
    assert code == grpc.StatusCode.OK and status.version == 1
    assert {v.version: v.state for v in status.versions}[bad] == reco_pb2.MODEL_STATE_FAILED


def test_reload_to_a_good_version(harness: Harness) -> None:
    server, root = harness
    good = copy_version(root / "demo", 1)
    resp, code, _ = unary(server, "Reload", reco_pb2.ReloadRequest(version="latest"))
    assert code == grpc.StatusCode.OK and (resp.old_version, resp.new_version) == (1, good)
    rec, _, _ = unary(server, "Recommend", reco_pb2.RecommendRequest(user_id="u0000001", n=2))
    assert rec.version == good


# Moved from the process-tree tests: how one worker answers bad Reload input needs no tree.
def test_reload_input_errors(harness: Harness) -> None:
    server, _ = harness
    for request, code, field in [
        (reco_pb2.ReloadRequest(version="seven"), grpc.StatusCode.INVALID_ARGUMENT, "version"),
        (reco_pb2.ReloadRequest(version="²"), grpc.StatusCode.INVALID_ARGUMENT, "version"),
        (reco_pb2.ReloadRequest(version="99"), grpc.StatusCode.NOT_FOUND, "version"),
        (reco_pb2.ReloadRequest(model="other"), grpc.StatusCode.NOT_FOUND, "model"),
    ]:
        _, got, details = unary(server, "Reload", request)
        assert got == code and details.startswith(field + ":"), (request, got, details)
    same, code, _ = unary(server, "Reload", reco_pb2.ReloadRequest(version="latest"))
    assert code == grpc.StatusCode.OK and (same.old_version, same.new_version) == (1, 1)
    status, _, _ = unary(server, "GetModelStatus", reco_pb2.GetModelStatusRequest())
    assert status.version == 1
