"""Server interceptors: one structured log line per RPC (and hooks for metrics/auth)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from reco_sidecar import callinfo, logs

log = logs.get("reco_sidecar.rpc")

# Only the Recommender's own calls are logged per call; health probes would drown them.
LOGGED_PREFIX = "/reco.v1.Recommender/"


def _code_of(context: grpc.ServicerContext, error: BaseException | None) -> str:
    code = context.code() if hasattr(context, "code") else None
    if isinstance(code, grpc.StatusCode):
        return code.name
    if error is not None:
        return "UNKNOWN" if not isinstance(error, grpc.RpcError) else "CANCELLED"
    return "OK"


def wrap_handler(
    handler: grpc.RpcMethodHandler, around: Callable[[Callable[[], Any], grpc.ServicerContext, bool], Any]
) -> grpc.RpcMethodHandler:
    """Runs every call of `handler` through `around(call, context, streaming)`."""
    if handler.unary_unary is not None:
        inner_uu = handler.unary_unary

        def unary_unary(request: Any, context: grpc.ServicerContext) -> Any:
            return around(lambda: inner_uu(request, context), context, False)

        return grpc.unary_unary_rpc_method_handler(unary_unary, handler.request_deserializer,
                                                   handler.response_serializer)
    if handler.unary_stream is not None:
        inner_us = handler.unary_stream

        def unary_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            return around(lambda: inner_us(request, context), context, True)  # type: ignore[no-any-return]

        return grpc.unary_stream_rpc_method_handler(unary_stream, handler.request_deserializer,
                                                    handler.response_serializer)
    return handler


class LoggingInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        method: str = details.method
        if handler is None or not method.startswith(LOGGED_PREFIX):
            return handler
        metadata = dict(details.invocation_metadata or ())
        request_id = metadata.get("x-request-id", "")
        name = method.rsplit("/", 1)[-1]

        def around(call: Callable[[], Any], context: grpc.ServicerContext, streaming: bool) -> Any:
            if streaming:
                return self._stream(call, context, name, request_id)
            info = callinfo.begin()
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                return call()
            except BaseException as e:
                error = e
                raise
            finally:
                self._log(name, request_id, context, error, started, info)
                callinfo.end()

        return wrap_handler(handler, around)

    def _stream(self, call: Callable[[], Any], context: grpc.ServicerContext, name: str,
                request_id: str) -> Iterator[Any]:
        info = callinfo.begin()
        started = time.perf_counter()
        error: BaseException | None = None
        sent = 0
        try:
            for response in call():
                sent += 1
                yield response
        except BaseException as e:
            error = e
            raise
        finally:
            info["responses"] = sent
            self._log(name, request_id, context, error, started, info)
            callinfo.end()

    @staticmethod
    def _log(name: str, request_id: str, context: grpc.ServicerContext, error: BaseException | None,
             started: float, info: dict[str, Any]) -> None:
        code = _code_of(context, error)
        log.info("rpc", method=name, code=code, latency_ms=round((time.perf_counter() - started) * 1e3, 3),
                 request_id=request_id, worker_pid=os.getpid(), **info)
