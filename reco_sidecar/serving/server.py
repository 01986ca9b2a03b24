"""The grpc.aio server of one serving process, built one way: the Recommender behind its gate,
health and reflection each with its own stream limit, the listening addresses bound with the
settings' credentials. A worker builds its server here, and so does the in-process test
harness: what the tests reach is what a worker serves.

Called on the event loop that will run the server (grpc.aio objects belong to the loop that
made them), and in a worker only after the fork (grpc/grpc#16001).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from reco_sidecar.experiments.live import LiveExperiments
from reco_sidecar.manager.registry import ModelRegistry
from reco_sidecar.ranking.live import LiveRules
from reco_sidecar.serving import auth, handlers, names, reflection, security, tracing
from reco_sidecar.serving import request_checks as rq
from reco_sidecar.serving.contracts import (
    ExperimentsOutcome,
    Reloader,
    RulesOutcome,
    Topology,
    no_experiments_file,
    no_rules_file,
)
from reco_sidecar.serving.health import Health
from reco_sidecar.serving.jsonld import Renderer
from reco_sidecar.serving.observe import AccessLog, Tally
from reco_sidecar.serving.online import Online
from reco_sidecar.serving.service import RecommenderService
from reco_sidecar.settings import ServeSettings
from reco_sidecar.store.status import StoreStatus


@dataclass
class Serving:
    server: grpc.aio.Server
    service: RecommenderService
    gate: handlers.Gate
    tally: Tally
    health: Health
    credentials: grpc.ServerCredentials | None
    tracing: tracing.Tracing | None = None

    def bind(self, target: str) -> int:
        """The port bound for `target` ("host:port", port 0 for a free one), or 0 if it could
        not be bound."""
        try:
            return (self.server.add_secure_port(target, self.credentials) if self.credentials
                    else self.server.add_insecure_port(target))
        except RuntimeError:
            return 0

    async def start(self) -> None:
        await self.server.start()
        for name in ("", names.SERVICE):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def drain(self, grace: float) -> None:
        """NOT_SERVING for good (health Watch streams end), then new calls refused and running
        ones given `grace` seconds."""
        self.health.drain()
        await self.server.stop(grace)
        if self.tracing is not None:  # the last spans sent, bounded: a dead collector holds no exit
            await asyncio.to_thread(self.tracing.shutdown)


def build(settings: ServeSettings, registry: ModelRegistry, *, reloader: Reloader, topology: Topology,
          experiments: LiveExperiments | None = None,
          reload_experiments: Callable[[], ExperimentsOutcome] = no_experiments_file,
          store_status: Callable[[], StoreStatus | None] = lambda: None,
          reuse_port: bool = True, online: Online | None = None, rules: LiveRules | None = None,
          reload_rules: Callable[[], RulesOutcome] = no_rules_file) -> Serving:
    """The server, its handlers registered, nothing bound yet. `reuse_port`: the workers share
    one port through SO_REUSEPORT; a lone server on a port of its own does without."""
    tally = Tally()
    traces = tracing.build(settings)  # here, after the fork: the SDK's thread and channel are this process's
    gate = handlers.Gate(limit=settings.max_concurrent_rpcs, tally=tally,
                         access_log=AccessLog(settings.access_log, settings.slow_call_ms / 1000.0),
                         batch_memory_bytes=settings.batch_memory_mb * handlers.MB, tracing=traces)
    authenticator = auth.from_settings(settings)
    service = RecommenderService(
        registry,
        experiments=experiments,
        reload_experiments=reload_experiments,
        limits=rq.Limits(settings.max_n, settings.max_offset, settings.max_ids, settings.max_batch_users),
        renderer=Renderer(settings.jsonld_item_iri),
        reloader=reloader,
        topology=topology,
        batch_max_delay=settings.batch_max_delay_ms / 1000.0,
        batch_max_size=settings.batch_max_size,
        batch_chunk=settings.batch_chunk,
        batch_wait_policy=settings.batch_wait_policy,
        on_batch=tally.batch,
        recommends_in_flight=lambda: gate.recommends_in_flight,
        store_status=store_status,
        rules=rules,
        reload_rules=reload_rules,
        online=online,
    )
    options: list[tuple[str, Any]] = [
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
    ]
    # No server-wide maximum_concurrent_rpcs: it would count health and reflection streams
    # too. The gate limits the Recommender's calls, handlers.with_stream_limits the others.
    # Without tokens, no interceptor: it would cost every call a coroutine for nothing.
    recommender = handlers.recommender_handlers(service, gate)
    interceptors = ([handlers.CredentialsFirst(gate, authenticator, recommender)] if authenticator is not None
                    else [])
    server = grpc.aio.server(options=options, interceptors=interceptors)
    handlers.register(server, names.SERVICE, recommender)
    health_servicer = Health()
    captured = handlers.Captured()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, captured)
    handlers.register(server, captured.service, handlers.with_stream_limits("health", captured.handlers,
                                                                               settings.max_side_streams))
    # v1 and v1alpha share one handler, and so one limit
    reflection_handlers = reflection.method_handlers((names.SERVICE, health.SERVICE_NAME))
    limited = handlers.with_stream_limits("reflection", next(iter(reflection_handlers.values())),
                                         settings.max_side_streams)
    for name in reflection_handlers:
        handlers.register(server, name, limited)
    return Serving(server, service, gate, tally, health_servicer, security.server_credentials(settings), traces)
