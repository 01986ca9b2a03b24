"""Server interceptors: one structured log line and the metrics of every Recommender RPC,
and bearer-token authentication when tokens are configured."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc

from reco_sidecar.common import logs
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.serving import callinfo, metrics

log = logs.get("reco_sidecar.rpc")

# Only the Recommender's own calls are observed; health probes would drown them.
OBSERVED_PREFIX = "/reco.v1.Recommender/"
_SOURCE_PREFIX = "SOURCE_"

# The stubs make ServerInterceptor generic; at run time it is a plain class.
if TYPE_CHECKING:
    ServerInterceptorBase = grpc.ServerInterceptor[Any, Any]
else:
    ServerInterceptorBase = grpc.ServerInterceptor


def _code_of(context: grpc.ServicerContext, error: BaseException | None) -> str:
    code = context.code() if hasattr(context, "code") else None
    if isinstance(code, grpc.StatusCode):
        return code.name
    if error is not None:
        return "UNKNOWN" if not isinstance(error, grpc.RpcError) else "CANCELLED"
    return "OK"


def _source_of(response: Any) -> str | None:
    if isinstance(response, reco_pb2.BatchRecommendResponse) and response.HasField("error"):
        return "error"
    value = getattr(response, "source", None)
    if not isinstance(value, int) or not value:
        return None
    return reco_pb2.Source.Name(value).removeprefix(_SOURCE_PREFIX).lower()


def wrap_handler(
    handler: grpc.RpcMethodHandler[Any, Any], around: Callable[[Callable[[], Any], grpc.ServicerContext, bool], Any]
) -> grpc.RpcMethodHandler[Any, Any]:
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


class _Call:
    """What one observed call learnt: its facts (callinfo), timing and response sources."""

    def __init__(self, method: str, request_id: str) -> None:
        self.method = method
        self.request_id = request_id
        self.info = callinfo.begin()
        self.sources: Counter[str] = Counter()
        self.started = time.perf_counter()

    def saw(self, response: Any) -> None:
        source = _source_of(response)
        if source is not None:
            self.sources[source] += 1
        # The servicer annotates from threads of its own at times (BatchRecommend chunks),
        # where the call's context variable is not set; the responses name model and version.
        for key in ("model", "version"):
            value = getattr(response, key, None)
            if key not in self.info and value:
                self.info[key] = value

    def finish(self, context: grpc.ServicerContext, error: BaseException | None) -> None:
        seconds = time.perf_counter() - self.started
        code = _code_of(context, error)
        callinfo.end()
        metrics.observe_rpc(self.method, code, seconds, self.sources)
        log.info("rpc", method=self.method, code=code, latency_ms=round(seconds * 1e3, 3),
                 request_id=self.request_id, worker_pid=os.getpid(), **self.info)


class ObservingInterceptor(ServerInterceptorBase):
    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        method: str = details.method
        if handler is None or not method.startswith(OBSERVED_PREFIX):
            return handler
        metadata = dict(details.invocation_metadata or ())
        request_id = str(metadata.get("x-request-id", ""))
        name = method.rsplit("/", 1)[-1]

        def around(call: Callable[[], Any], context: grpc.ServicerContext, streaming: bool) -> Any:
            if streaming:
                return self._stream(call, context, name, request_id)
            observed = _Call(name, request_id)
            error: BaseException | None = None
            try:
                response = call()
                observed.saw(response)
                return response
            except BaseException as e:
                error = e
                raise
            finally:
                observed.finish(context, error)

        return wrap_handler(handler, around)

    @staticmethod
    def _stream(call: Callable[[], Any], context: grpc.ServicerContext, name: str,
                request_id: str) -> Iterator[Any]:
        # Begun here, in the generator, so the facts live in the context the body runs in.
        observed = _Call(name, request_id)
        error: BaseException | None = None
        sent = 0
        try:
            for response in call():
                sent += 1
                observed.saw(response)
                yield response
        except BaseException as e:
            error = e
            raise
        finally:
            observed.info["responses"] = sent
            observed.finish(context, error)

