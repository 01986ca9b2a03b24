"""The Recommend service in this process, without a network (grpcio-testing): for what one
worker does with one request, which needs no process tree. What needs processes (the pool, the
reload transaction across workers, signals, the ready line) is tested against a real tree."""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import Iterator
from typing import Any

import grpc
import grpc_testing
from google.protobuf.message import Message

from reco_sidecar.artifact import loader
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.manager.manager import ModelManager
from reco_sidecar.serving import request_checks as rq
from reco_sidecar.serving.jsonld import Renderer
from reco_sidecar.serving.reloader import LocalReloader
from reco_sidecar.serving.service import RecommenderService, WorkerAddress

SERVICE = reco_pb2.DESCRIPTOR.services_by_name["Recommender"]
LIMITS = rq.Limits(max_n=50, max_offset=100, max_ids=10, max_batch_users=100)


class StaticTopology:
    def me(self) -> WorkerAddress:
        return WorkerAddress(1, "127.0.0.1:1")

    def workers(self) -> list[WorkerAddress]:
        return [self.me()]

    def shared_address(self) -> str:
        return "127.0.0.1:0"


@contextlib.contextmanager
def servicer(model_root: pathlib.Path, model: str, version: int = 1, limits: rq.Limits = LIMITS) -> Iterator[Any]:
    """A grpcio-testing server around the service, serving `version` of `model`; Reload reloads
    this process's manager."""
    manager = ModelManager(model_root, model, loader.open_model)
    manager.load(version)
    service = RecommenderService(
        manager, limits=limits, renderer=Renderer("urn:item:{id}"), reloader=LocalReloader(manager),
        topology=StaticTopology(), batch_max_delay=0.001, batch_max_size=8, batch_chunk=16,
    )
    try:
        yield grpc_testing.server_from_dictionary({SERVICE: service}, grpc_testing.strict_real_time())
    finally:
        service.close()


def unary(server: Any, method: str, request: Message) -> tuple[Any, grpc.StatusCode, str]:
    """(response, status code, details) of one unary call."""
    rpc = server.invoke_unary_unary(SERVICE.methods_by_name[method], (), request, None)
    response, _, code, details = rpc.termination()
    return response, code, details or ""
