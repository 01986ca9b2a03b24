"""grpc.health.v1 for one worker: SERVING once its server has started; NOT_SERVING for good
once it drains. Draining also ends every Watch stream, right after telling it NOT_SERVING: a
client pool keeps one Watch open on every worker, and such a stream is not work for the
drain to wait for (left open, it held every stop for the whole --grace)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

Status = int  # a health_pb2.HealthCheckResponse.ServingStatus value


class Health:
    """The servicer: registered through health_pb2_grpc.add_HealthServicer_to_server."""

    def __init__(self) -> None:
        self._status: dict[str, Status] = {"": health_pb2.HealthCheckResponse.SERVING}
        self._draining = False
        # Replaced on every change: a watcher takes the current one before it reads the
        # status, so a change while it writes is never missed.
        self._changed = asyncio.Event()

    async def Check(self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
                    ) -> health_pb2.HealthCheckResponse:
        status = self._status.get(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return health_pb2.HealthCheckResponse(status=status)

    async def List(self, request: health_pb2.HealthListRequest, context: grpc.aio.ServicerContext[Any, Any]
                   ) -> health_pb2.HealthListResponse:
        return health_pb2.HealthListResponse(statuses={
            service: health_pb2.HealthCheckResponse(status=status) for service, status in self._status.items()})

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        sent: Status | None = None
        while True:
            changed = self._changed
            status = self._status.get(request.service, health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)
            if status != sent:
                await context.write(health_pb2.HealthCheckResponse(status=status))
                sent = status
            if self._draining:
                return  # the stream ends: the watcher learnt NOT_SERVING, the drain waits for nothing
            await changed.wait()

    def set(self, service: str, status: Status) -> None:
        if self._draining:
            return
        self._status[service] = status
        self._wake()

    def drain(self) -> None:
        """NOT_SERVING for every service, for good; every Watch writes it and ends."""
        self._draining = True
        for service in self._status:
            self._status[service] = health_pb2.HealthCheckResponse.NOT_SERVING
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
