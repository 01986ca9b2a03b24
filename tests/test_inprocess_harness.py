"""The in-process harness serves through a worker's server and leaves nothing behind."""

from __future__ import annotations

import pathlib

import grpc
import pytest

from reco_sidecar.common.errors import ArtifactError
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.serving import names
from tests.support.server import in_process_sidecar


def test_serves_the_recommender_health_and_limits_then_stops_everything(demo_root: pathlib.Path) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with in_process_sidecar(demo_root, "demo", extra_args=["--max-n", "7"]) as server:
        stub = server.stub()
        assert len(stub.Recommend(reco_pb2.RecommendRequest(user_id="u0000001", n=7), timeout=30).items) == 7
        with pytest.raises(grpc.RpcError) as e:
            stub.Recommend(reco_pb2.RecommendRequest(user_id="u0000001", n=8), timeout=30)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with grpc.insecure_channel(server.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            reply = health.Check(health_pb2.HealthCheckRequest(service=names.SERVICE), timeout=30)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        address, thread = server.address, server.thread
    assert not thread.is_alive()
    # the port is closed: a new connection is refused, not answered
    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as e:
        health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5, wait_for_ready=False)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_model_that_cannot_be_served_fails_the_start(tmp_path: pathlib.Path) -> None:
    (tmp_path / "demo").mkdir()
    with pytest.raises(ArtifactError), in_process_sidecar(tmp_path, "demo"):
        raise AssertionError("started without a model")
