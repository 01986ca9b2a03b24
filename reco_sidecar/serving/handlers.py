"""The grpc.aio method handlers of a worker: every Recommender call passes one gate that
limits concurrency, bounds the memory open streams' requests hold, parses the request, turns
domain errors into status codes and counts and logs the call. The bearer token is checked
before that, from the call's metadata alone, by the one interceptor (`CredentialsFirst`):
gRPC hands a unary handler the whole request body, so a call without a valid token is given
a handler that never reads it.

Requests arrive as raw bytes and are parsed here, so malformed bytes are INVALID_ARGUMENT
(grpc's own deserializer failure is INTERNAL). Health and reflection are not behind the
Recommender's limit: each streaming method there has a small limit of its own, so idle
reflection streams can starve neither the service nor the health probe.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message

from reco_sidecar.common import logs
from reco_sidecar.common.errors import RecoError
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.serving.auth import Authenticator
from reco_sidecar.serving.codes import status_code
from reco_sidecar.serving.names import SERVICE
from reco_sidecar.serving.observe import AccessLog, Tally
from reco_sidecar.serving.service import Facts, RecommenderService
from reco_sidecar.serving.tracing import CallSpan, Tracing

log = logs.get(__name__)


# The caller's x-request-id is logged cut to this: it is the client's to choose, and a
# failed call is always logged.
MAX_REQUEST_ID_CHARS = 128
# A status message is cut to this many characters, whatever raised it: it travels in a
# trailer, and past about 8 KiB a default client reports RESOURCE_EXHAUSTED instead of the
# code. Messages quote clients' values cut already (common.errors.echo); this is the bound.
MAX_STATUS_MESSAGE_CHARS = 1024

Unary = Callable[[Any, Facts], Awaitable[Message]]
Streaming = Callable[[Any, Facts], AsyncIterator[Message]]


class _Refused(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# A BatchRecommend stream holds its request for its whole life: the bytes gRPC received, its
# own copy, and the parsed message (upb keeps every id and a view of it, 3.1 times the wire
# size for 1M ten-byte ids). Measured on a worker, a 1M-user request of 14 MB raised its
# resident memory by 68-75 MB while the stream stayed open.
HELD_PER_REQUEST_BYTE = 5
MB = 1 << 20


class RequestMemory:
    """What the requests of open BatchRecommend streams hold on one worker, read or not,
    against --batch-memory-mb. A stream always starts when no other holds any, so the largest
    request --max-message-bytes admits can always be answered."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit = limit_bytes
        self.held = 0

    def take(self, request_bytes: int) -> int:
        """Reserves a request's share and returns it; raises _Refused past the limit."""
        need = request_bytes * HELD_PER_REQUEST_BYTE
        if self.held and self.held + need > self.limit:
            raise _Refused(grpc.StatusCode.RESOURCE_EXHAUSTED,
                           f"user_ids: this request ({request_bytes / MB:.1f} MB) holds {need / MB:.0f} MB while it "
                           f"streams, and open BatchRecommend streams on this worker hold {self.held / MB:.0f} MB of "
                           f"the {self.limit // MB} MB --batch-memory-mb allows; retry when they end, or send "
                           "fewer users per call")
        self.held += need
        return need

    def give(self, share: int) -> None:
        self.held -= share


class Gate:
    """State shared by every Recommender call of one worker (all on its event loop)."""

    def __init__(self, *, limit: int, tally: Tally, access_log: AccessLog,
                 batch_memory_bytes: int = 256 * MB, tracing: Tracing | None = None) -> None:
        self.limit = limit
        self.tracing = tracing  # None: tracing off, no span of any kind
        self.in_flight = 0
        # Recommend calls among them: the batcher's signal that company is on its way
        self.recommends_in_flight = 0
        self.calls = 0
        self.tally = tally
        self.access_log = access_log
        self.requests = RequestMemory(batch_memory_bytes)

    def counts(self) -> tuple[int, int]:
        """(calls started so far, calls running now): a worker's activity, for idle shutdown.
        Only calls that passed the limit and the token count; a running stream is activity."""
        return self.calls, self.in_flight

    def enter(self) -> None:
        """Raises _Refused; otherwise the call counts as in flight until it ends."""
        if self.in_flight >= self.limit:
            raise _Refused(grpc.StatusCode.RESOURCE_EXHAUSTED,
                           f"more than {self.limit} calls in flight on this worker (--max-concurrent-rpcs)")
        self.calls += 1
        self.in_flight += 1

    def finish(self, method: str, code: str, started: float, context: grpc.aio.ServicerContext[Any, Any],
               facts: Facts) -> None:
        seconds = time.perf_counter() - started
        self.tally.rpc(method, code, seconds)
        source = facts.get("source")
        if source is not None:
            self.tally.response(method, source)
        sources = facts.get("sources")
        if sources:
            for name, n in sources.items():
                self.tally.response(method, name, n)
        if self.access_log.wanted(code, seconds):
            shown = {k: v for k, v in facts.items() if k != "sources"}
            request_id = str(_metadata(context).get("x-request-id", ""))[:MAX_REQUEST_ID_CHARS]
            self.access_log.write(method, code, seconds, request_id, shown)


def _metadata(context: grpc.aio.ServicerContext[Any, Any]) -> dict[str, Any]:
    return dict(context.invocation_metadata() or ())


def _parse(kind: type[Message], raw: bytes) -> Any:
    try:
        return kind.FromString(raw)
    except (DecodeError, RuntimeError, ValueError):
        # the message names no id or content: the bytes may be anything
        raise _Refused(grpc.StatusCode.INVALID_ARGUMENT,
                       f"request: not a valid {kind.DESCRIPTOR.full_name} message") from None


# A client whose deadline passes cancels the call itself; the server learns it a little
# before its own copy of the deadline (it received the call later than it was sent).
DEADLINE_SLACK = 0.5


def _ended_code(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """Why a call's task was cancelled: the client's deadline passed, or it cancelled."""
    remaining = context.time_remaining()
    return "DEADLINE_EXCEEDED" if remaining is not None and remaining <= DEADLINE_SLACK else "CANCELLED"


def _refusal(error: Exception) -> tuple[grpc.StatusCode, str]:
    if isinstance(error, _Refused):
        return error.code, error.message
    if isinstance(error, RecoError):
        # mid-stream too: a stream ends with the error's own code
        return status_code(error), str(error)
    if isinstance(error, ValueError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(error)
    log.exception("rpc_failed")
    return grpc.StatusCode.INTERNAL, "internal error; see the server log"


class _Call:
    """One call's bookkeeping. A failure is counted and logged before its status is sent,
    so a client that got the status finds the log line already written."""

    __slots__ = ("context", "entered", "facts", "gate", "name", "started", "trace")

    def __init__(self, gate: Gate, name: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self.gate = gate
        self.name = name
        self.context = context
        self.started = time.perf_counter()
        self.facts: Facts = {}
        self.entered = False
        self.trace: CallSpan | None = None if gate.tracing is None else gate.tracing.start_call(name, context,
                                                                                                  self.facts)

    def enter(self) -> None:
        self.gate.enter()
        self.entered = True
        if self.name == "Recommend":
            self.gate.recommends_in_flight += 1

    def end(self, code: str, message: str = "") -> None:
        if self.entered:
            self.entered = False
            self.gate.in_flight -= 1
            if self.name == "Recommend":
                self.gate.recommends_in_flight -= 1
        self.gate.finish(self.name, code, self.started, self.context, self.facts)
        if self.trace is not None:  # after the log line, which carries the span's ids
            self.trace.finish(code, self.facts, message)
            self.trace = None

    async def fail(self, error: Exception) -> None:
        status, message = _refusal(error)
        self.end(status.name, message[:MAX_STATUS_MESSAGE_CHARS])
        await self.context.abort(status, message[:MAX_STATUS_MESSAGE_CHARS])


def _unary(gate: Gate, name: str, kind: type[Message], impl: Unary) -> Callable[..., Awaitable[Message]]:
    async def handle(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        call = _Call(gate, name, context)
        try:
            call.enter()
            response = await impl(_parse(kind, raw), call.facts)
        except asyncio.CancelledError:
            call.end(_ended_code(context))
            raise
        except Exception as e:
            await call.fail(e)
            raise AssertionError("unreachable: abort raises") from e
        call.end("OK")
        return response

    return handle


async def _closed_with_the_call(stream: AsyncGenerator[Any, None], context: grpc.aio.ServicerContext[Any, Any]
                                ) -> AsyncGenerator[Any, None]:
    """`stream`'s messages; `stream` is closed as soon as its call ends. When a client cancels,
    gRPC stops iterating a stream but does not close it: left to the garbage collector, its
    `finally` blocks (the model lease, the log line, a stream limit's count) would run
    whenever that happens."""
    loop = asyncio.get_running_loop()

    def ended(_context: Any) -> None:
        if stream.ag_running:  # type: ignore[attr-defined]
            return
        task = loop.create_task(stream.aclose())
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    done_callback: Any = ended
    context.add_done_callback(done_callback)
    async for message in stream:
        yield message


_closing: set[asyncio.Task[None]] = set()  # references keep the closing tasks alive


def _streaming(gate: Gate, name: str, kind: type[Message], impl: Streaming
               ) -> Callable[..., AsyncIterator[Message]]:
    async def stream(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncGenerator[Message, None]:
        call = _Call(gate, name, context)
        sent = 0
        share = 0
        try:
            call.enter()
            # Before parsing: the parsed message is most of what a stream holds.
            share = gate.requests.take(len(raw))
            async for message in impl(_parse(kind, raw), call.facts):
                sent += 1
                yield message
        except (asyncio.CancelledError, GeneratorExit):
            call.facts["responses"] = sent
            call.end(_ended_code(context))
            raise
        except Exception as e:
            call.facts["responses"] = sent
            await call.fail(e)
            raise AssertionError("unreachable: abort raises") from e
        finally:
            gate.requests.give(share)
        call.facts["responses"] = sent
        call.end("OK")

    async def handle(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Message]:
        async for message in _closed_with_the_call(stream(raw, context), context):
            yield message

    return handle


ClientStreaming = Callable[[AsyncIterator[Any], Facts], Awaitable[Message]]


def _client_streaming(gate: Gate, name: str, kind: type[Message], impl: ClientStreaming
                      ) -> Callable[..., Awaitable[Message]]:
    """A client stream passes the gate once, like a unary call; each message is parsed as
    it arrives, so a malformed one ends the call with INVALID_ARGUMENT."""

    async def handle(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        call = _Call(gate, name, context)

        async def parsed() -> AsyncIterator[Any]:
            async for raw in requests:
                yield _parse(kind, raw)

        try:
            call.enter()
            response = await impl(parsed(), call.facts)
        except asyncio.CancelledError:
            call.end(_ended_code(context))
            raise
        except Exception as e:
            await call.fail(e)
            raise AssertionError("unreachable: abort raises") from e
        call.end("OK")
        return response

    return handle


def recommender_handlers(service: RecommenderService, gate: Gate) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    def unary(name: str, kind: type[Message], response: type[Message], impl: Unary
              ) -> grpc.RpcMethodHandler[Any, Any]:
        return grpc.unary_unary_rpc_method_handler(_unary(gate, name, kind, impl), None,
                                                   response.SerializeToString)

    return {
        "Recommend": unary("Recommend", reco_pb2.RecommendRequest, reco_pb2.RecommendResponse,
                           service.recommend),
        "Similar": unary("Similar", reco_pb2.SimilarRequest, reco_pb2.SimilarResponse, service.similar),
        "BatchRecommend": grpc.unary_stream_rpc_method_handler(
            _streaming(gate, "BatchRecommend", reco_pb2.BatchRecommendRequest, service.batch_recommend), None,
            reco_pb2.BatchRecommendResponse.SerializeToString),
        "Reload": unary("Reload", reco_pb2.ReloadRequest, reco_pb2.ReloadResponse, service.reload),
        "GetModelStatus": unary("GetModelStatus", reco_pb2.GetModelStatusRequest,
                                reco_pb2.GetModelStatusResponse, service.get_model_status),
        "ListExperiments": unary("ListExperiments", reco_pb2.ListExperimentsRequest,
                                 reco_pb2.ListExperimentsResponse, service.list_experiments),
        "ReloadExperiments": unary("ReloadExperiments", reco_pb2.ReloadExperimentsRequest,
                                   reco_pb2.ReloadExperimentsResponse, service.reload_experiments),
        "ReloadRules": unary("ReloadRules", reco_pb2.RankingReloadRulesRequest,
                             reco_pb2.RankingReloadRulesResponse, service.reload_rules),
        "Feedback": unary("Feedback", reco_pb2.FeedbackRequest, reco_pb2.FeedbackResponse, service.feedback),
        "FeedbackStream": grpc.stream_unary_rpc_method_handler(
            _client_streaming(gate, "FeedbackStream", reco_pb2.FeedbackRequest, service.feedback_stream), None,
            reco_pb2.FeedbackResponse.SerializeToString),
    }


class CredentialsFirst(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]  # generic in the stubs only
    """Checks a Recommender call's bearer token from its metadata, before gRPC reads the
    request body. A refused call gets a handler that never reads the body (to gRPC, a
    client-streaming one that is not iterated): at most a flow-control window of it is
    received, where a unary handler is handed all of it, up to --max-message-bytes. The
    refusal is counted and logged through the gate like any other call's."""

    def __init__(self, gate: Gate, authenticator: Authenticator, methods: Iterable[str]) -> None:
        self._gate = gate
        self._auth = authenticator
        # Only the Recommender's own methods: an unknown one stays UNIMPLEMENTED, and never
        # becomes a label of the call counts.
        self._names = {f"/{SERVICE}/{name}": name for name in methods}

    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails],
                                                             Awaitable[grpc.RpcMethodHandler[Any, Any]]],
                                details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any]:
        name = self._names.get(details.method)
        if name is not None:
            authorization = dict(details.invocation_metadata or ()).get("authorization")
            refused = self._auth.check(details.method, authorization)
            if refused is not None:
                return self._refusal(name, *refused)
        return await continuation(details)

    def _refusal(self, name: str, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler[Any, Any]:
        gate = self._gate

        async def refuse(_unread: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
            await _Call(gate, name, context).fail(_Refused(code, message))

        return grpc.stream_stream_rpc_method_handler(refuse)


def register(server: grpc.aio.Server, service_name: str,
             handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]) -> None:
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service_name, dict(handlers)),))
    # registered methods are matched by grpc core without a Python lookup (missing from the stubs)
    server.add_registered_method_handlers(service_name, dict(handlers))  # type: ignore[attr-defined]


class Captured:
    """Stands in for the server in a generated `add_*Servicer_to_server`, so a stock
    service's handlers can be wrapped before they are registered."""

    def __init__(self) -> None:
        self.service = ""
        self.handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    def add_generic_rpc_handlers(self, _handlers: Any) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, Any]) -> None:
        self.service = service
        self.handlers = dict(handlers)


def with_stream_limits(what: str, handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]],
                       limit: int) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """The same handlers, each streaming method allowed `limit` calls at once (the rest are
    RESOURCE_EXHAUSTED); unary ones (the health Check) stay unlimited."""
    out = {}
    for name, handler in handlers.items():
        if handler.unary_stream is not None:
            out[name] = grpc.unary_stream_rpc_method_handler(
                _limited(handler.unary_stream, limit, f"{what} {name}"),
                handler.request_deserializer, handler.response_serializer)
        elif handler.stream_stream is not None:
            out[name] = grpc.stream_stream_rpc_method_handler(
                _limited(handler.stream_stream, limit, f"{what} {name}"),
                handler.request_deserializer, handler.response_serializer)
        else:
            out[name] = handler
    return out


def _limited(inner: Callable[..., Any], limit: int, what: str) -> Callable[..., Any]:
    """`inner` limited to `limit` calls at once; it may be an async generator (reflection)
    or a coroutine writing with context.write (health Watch)."""
    state = {"in_flight": 0}
    refusal = f"more than {limit} {what} streams at once"

    if inspect.isasyncgenfunction(inner):
        async def generator(request: Any, context: grpc.aio.ServicerContext[Any, Any]
                            ) -> AsyncGenerator[Any, None]:
            if state["in_flight"] >= limit:
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal)
            state["in_flight"] += 1
            try:
                async for message in inner(request, context):
                    yield message
            finally:
                state["in_flight"] -= 1

        async def closing(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            async for message in _closed_with_the_call(generator(request, context), context):
                yield message

        return closing

    async def coroutine(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if state["in_flight"] >= limit:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal)
        state["in_flight"] += 1
        try:
            return await inner(request, context)
        finally:
            state["in_flight"] -= 1

    return coroutine
