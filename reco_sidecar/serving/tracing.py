"""OpenTelemetry traces of the Recommender's calls, off unless an OTLP endpoint is given.

Each call is a SERVER span, the child of the caller's span when its metadata carries W3C
`traceparent` (and `tracestate`), recorded as plain values and handed to the SDK's batch
processor when it ends (serving/trace_spans.py), exported by the SDK's OTLP exporter with a
cheaper encoding (serving/trace_export.py); inside it, child spans for the scoring (with the batch's
size) and each BatchRecommend chunk, and events for the batcher's wait and the rendering.
Events, not spans, for those two: a span costs a Recommend more CPU to make and to encode for
export than an event (bench/tracing_cost.py), and the wait and the render are the gaps before
and after the `score` span anyway; the events carry their durations. Attributes follow
OpenTelemetry's RPC conventions (rpc.system, rpc.service, rpc.method, rpc.grpc.status_code,
server.address, network.peer.address...) plus the model, version, experiment and arm served.

Built per serving process, after the fork (`build`): the SDK's batch processor owns a thread
and the OTLP exporter a gRPC channel, and neither survives a fork. Spans are handed to that
thread's bounded queue; the export, its retries and a dead collector's timeouts all happen
there, never on the event loop, and a full queue drops spans, never calls.

With tracing off nothing here creates an object per call: the gate holds no Tracing, and each
hook in the service (`span`, `carry`, `batched`) costs one ContextVar lookup.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from reco_sidecar.common import logs, trace_context
from reco_sidecar.serving.names import METHODS, SERVICE

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import SpanContext

    from reco_sidecar.serving.batcher import LoopBatcher
    from reco_sidecar.serving.trace_spans import OpenSpan, Recorder
    from reco_sidecar.settings import ServeSettings

log = logs.get(__name__)

T = TypeVar("T")
K = TypeVar("K")
Q = TypeVar("Q")
R = TypeVar("R")

DEFAULT_SERVICE_NAME = "reco-sidecar"
# A live collector takes the last batch in far less; a dead one must not hold a worker's exit.
SHUTDOWN_TIMEOUT_MS = 2000
# What a call's facts are called as span attributes (other facts are not exported).
FACT_ATTRIBUTES = {
    "model": "reco.model",
    "version": "reco.model.version",
    "experiment": "reco.experiment",
    "arm": "reco.arm",
    "source": "reco.source",
    "items": "reco.items",
    "users": "reco.users",
    "responses": "reco.responses",
    "generation": "reco.experiments.generation",
}
_FACT_ITEMS = tuple(FACT_ATTRIBUTES.items())
_SCALARS = (str, int, float, bool)  # a tuple: isinstance checks it faster than a union
# Server spans whose status is an error, per OpenTelemetry's gRPC conventions: the server's
# own failures. A client's mistake (INVALID_ARGUMENT, NOT_FOUND...) leaves the status unset.
SERVER_ERRORS = frozenset({"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE",
                           "DATA_LOSS"})
# The service's scoring threads' name prefix: a batch scored there was handed off the loop.
EXECUTOR_PREFIX = "score"
_CODE_NUMBER = {code.name: code.value[0] for code in grpc.StatusCode}


def endpoint_configured(settings: ServeSettings) -> bool:
    """Tracing is on when an OTLP endpoint is given, by flag or by the standard variables, and
    OTEL_SDK_DISABLED is not true."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(settings.otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


_active: ContextVar[OpenSpan | None] = ContextVar("reco_span", default=None)


class Tracing:
    """One serving process's span recorder, its batch processor and exporter."""

    def __init__(self, provider: TracerProvider, recorder: Recorder, server_address: str, server_port: int) -> None:
        from opentelemetry import context, propagate, trace

        from reco_sidecar.serving import trace_parent

        self._parse = trace_parent.parse
        self._provider = provider
        self.recorder = recorder
        self._extract = propagate.extract
        self._current_span = trace.get_current_span
        self._in_context = trace.set_span_in_context
        self._non_recording = trace.NonRecordingSpan
        self._no_parent = context.Context()
        # Read once: the propagators are configured at import (OTEL_PROPAGATORS).
        self._w3c = trace_parent.w3c_propagation()
        self._server_kind = trace.SpanKind.SERVER
        self._internal_kind = trace.SpanKind.INTERNAL
        # Built once: a call's attributes start as a copy of these.
        self._base: dict[str, Any] = {"rpc.system": "grpc", "rpc.service": SERVICE, "server.address": server_address}
        if server_port:
            self._base["server.port"] = server_port
        self._names = {method: f"{SERVICE}/{method}" for method in METHODS}

    def start_call(self, method: str, context: grpc.aio.ServicerContext[Any, Any], facts: dict[str, Any]
                   ) -> CallSpan:
        """The call's server span, current (for child spans and log lines) in the calling task
        until `CallSpan.finish`. Its ids go into `facts` too: the access line of a stream the
        client cancelled is written from another task, where the current ids are not set."""
        carrier = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        parent, parent_span = self._parent(carrier.get("traceparent"), carrier.get("tracestate"), carrier)
        attributes: dict[str, Any] = {**self._base, "rpc.method": method}
        peer_address, peer_port = _peer(context.peer())
        if peer_address:
            attributes["network.peer.address"] = peer_address
        if peer_port:
            attributes["network.peer.port"] = peer_port
        request_id = carrier.get("x-request-id")
        if request_id:
            attributes["reco.request_id"] = request_id
        name = self._names.get(method) or f"{SERVICE}/{method}"
        trace_id, span_id, span = self.recorder.root(name, self._server_kind, parent, parent_span, attributes)
        # The ids are known even when the span is not sampled (the caller's trace): the log
        # lines carry them, so a line is found from the trace id whatever was sampled.
        return CallSpan(span, trace_id, span_id, facts)

    def _parent(self, traceparent: str | None, tracestate: str | None, carrier: dict[str, str] | None = None
                ) -> tuple[Context, SpanContext | None]:
        """The parent context for the sampler and the caller's span context (None: a trace of
        its own), read from W3C headers directly when those are the propagation in use (what
        `propagate.extract` would give, at a fraction of its cost: trace_parent.py), else
        through the configured propagators."""
        if self._w3c or carrier is None:
            remote = self._parse(traceparent, tracestate)
            if remote is None:
                return self._no_parent, None
            return self._in_context(self._non_recording(remote)), remote
        parent = self._extract(carrier)
        found = self._current_span(parent).get_span_context()
        return parent, found if found.is_valid else None

    def remote_step(self, name: str, traceparent: str, attributes: dict[str, Any]) -> RemoteStep | _NoStep:
        """A span `name` for the `with` block, the child of the span `traceparent` names in
        another process (a Reload's span, handed on by the supervisor with its transaction's
        messages); nothing when `traceparent` is empty or invalid, or names an unsampled
        span. The block's log lines carry its ids."""
        parent, parent_span = self._parent(traceparent, None)
        if parent_span is None:
            return _NO_STEP
        trace_id, span_id, span = self.recorder.root(name, self._internal_kind, parent, parent_span, attributes)
        return RemoteStep(span, trace_id, span_id)

    def shutdown(self) -> None:
        """Blocking, at most about SHUTDOWN_TIMEOUT_MS: the spans still queued are sent if the
        collector takes them by then, else dropped."""
        # The SDK's own shutdown waits up to 30 s for a collector; past the bound its thread is
        # left behind (a daemon: the process is exiting).
        closing = threading.Thread(target=self._provider.shutdown, name="trace-shutdown", daemon=True)
        closing.start()
        closing.join(SHUTDOWN_TIMEOUT_MS / 1000)


class CallSpan:
    __slots__ = ("_active_token", "_log_token", "span")

    def __init__(self, span: OpenSpan | None, trace_id: int, span_id: int, facts: dict[str, Any]) -> None:
        self.span = span
        self._log_token = trace_context.bind(trace_id, span_id)
        ids = trace_context.current()
        assert ids is not None
        facts["trace_id"], facts["span_id"] = ids  # formatted once, by bind
        self._active_token: Token[OpenSpan | None] | None = _active.set(span) if span is not None else None

    def finish(self, code: str, facts: dict[str, Any], message: str = "") -> None:
        """Ends the span with the call's status and facts. Called after the access log line is
        written (it carries the ids), possibly from another task when a stream is cancelled."""
        span = self.span
        if span is not None:
            attributes = span.attributes
            attributes["rpc.grpc.status_code"] = _CODE_NUMBER.get(code, 2)
            for name, attribute in _FACT_ITEMS:
                value = facts.get(name)
                if value is not None and isinstance(value, _SCALARS) and value != "":
                    attributes[attribute] = value
            if code in SERVER_ERRORS:
                from opentelemetry.trace import Status, StatusCode

                span.status = Status(StatusCode.ERROR, message or code)
            span.end()
            self.span = None
        if self._active_token is not None:
            with contextlib.suppress(ValueError, RuntimeError):
                _active.reset(self._active_token)
        trace_context.unbind(self._log_token)


class RemoteStep:
    """A span whose parent is in another process, ended when the `with` block ends: ERROR
    when the block raised or `failed` was called."""

    __slots__ = ("_log_token", "_span", "_span_id", "_trace_id")

    def __init__(self, span: OpenSpan | None, trace_id: int, span_id: int) -> None:
        self._span = span
        self._trace_id, self._span_id = trace_id, span_id
        self._log_token: Token[tuple[str, str] | None] | None = None

    def __enter__(self) -> RemoteStep:
        self._log_token = trace_context.bind(self._trace_id, self._span_id)
        return self

    def set(self, name: str, value: Any) -> None:
        if self._span is not None:
            self._span.attributes[name] = value

    def failed(self, message: str) -> None:
        if self._span is not None:
            from opentelemetry.trace import Status, StatusCode

            self._span.status = Status(StatusCode.ERROR, message)

    def __exit__(self, kind: Any, error: Any, _tb: Any) -> None:
        if self._span is not None:
            if error is not None:
                self._span.fail(error)
            self._span.end()
            self._span = None
        if self._log_token is not None:
            trace_context.unbind(self._log_token)


def traceparent() -> str:
    """The W3C traceparent of the current call's innermost sampled span, to hand to another
    process whose work joins the trace; "" when the call is not traced (or not sampled)."""
    active = _active.get()
    if active is None:
        return ""
    from reco_sidecar.serving.trace_parent import format_context

    return format_context(active.context)


def _peer(peer: str | None) -> tuple[str, int]:
    """grpc's "ipv4:127.0.0.1:5000" / "ipv6:[::1]:5000" / "unix:/path" → (address, port)."""
    if not peer:
        return "", 0
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return rest or peer, 0
    host, _, port = rest.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else 0


# -- child spans: hooks in the service, no-ops when the call is not traced --------------------------


class _NoStep:
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: Any) -> None:
        return None

    def set(self, name: str, value: Any) -> None:
        return None

    def failed(self, message: str) -> None:
        return None


_NO_STEP = _NoStep()
NO_STEP = _NO_STEP
Step = RemoteStep | _NoStep  # what `remote_step` gives


class _Step:
    """A child span made current for what runs inside the `with`."""

    __slots__ = ("_attributes", "_name", "_parent", "_span", "_token")

    def __init__(self, parent: OpenSpan, name: str, attributes: dict[str, Any]) -> None:
        self._parent = parent
        self._name = name
        self._attributes = attributes
        self._span: OpenSpan | None = None
        self._token: Token[OpenSpan | None] | None = None

    def __enter__(self) -> _Step:
        self._span = self._parent.child(self._name, dict(self._attributes))
        self._token = _active.set(self._span)
        return self

    def set(self, name: str, value: Any) -> None:
        if self._span is not None:
            self._span.attributes[name] = value

    def __exit__(self, kind: Any, error: Any, _tb: Any) -> None:
        assert self._span is not None and self._token is not None
        if error is not None and not isinstance(error, GeneratorExit):
            self._span.fail(error)
        self._span.end()
        with contextlib.suppress(ValueError, RuntimeError):
            _active.reset(self._token)


class _Event:
    """An event on the current span when the `with` block ends, with its duration."""

    __slots__ = ("_name", "_span", "_started")

    def __init__(self, span: OpenSpan, name: str) -> None:
        self._span = span
        self._name = name
        self._started = 0

    def __enter__(self) -> None:
        self._started = time.time_ns()

    def __exit__(self, *_: Any) -> None:
        ended = time.time_ns()
        self._span.add_event(self._name, {"reco.duration_ms": (ended - self._started) / 1e6}, ended)


def event(name: str) -> _Event | _NoStep:
    """An event `name` on the current span at the end of the `with` block, with the block's
    duration (`reco.duration_ms`); nothing when untraced."""
    active = _active.get()
    if active is None:
        return _NO_STEP
    return _Event(active, name)


def note(name: str, attributes: dict[str, Any]) -> None:
    """An event `name` on the current span now, with `attributes`; nothing when untraced."""
    active = _active.get()
    if active is not None:
        active.add_event(name, attributes, time.time_ns())


def span(name: str, attributes: dict[str, Any] | None = None) -> _Step | _NoStep:
    """A child span of the current call's span for the `with` block; nothing when untraced."""
    active = _active.get()
    if active is None:
        return _NO_STEP
    return _Step(active, name, attributes or {})


def carry(fn: Callable[..., T], name: str, attributes: dict[str, Any] | None = None) -> Callable[..., T]:
    """`fn` as it is when untraced; when traced, `fn` to run in another thread (an executor) in
    a child span of the current one, with the call's log ids: run_in_executor copies no context."""
    active = _active.get()
    if active is None:
        return fn
    ctx = contextvars.copy_context()

    def in_span(*args: Any) -> T:
        with _Step(active, name, attributes or {}):
            return fn(*args)

    def run(*args: Any) -> T:
        return ctx.run(in_span, *args)

    return run


# -- the batcher: its wait and the shared scoring, as spans of each call ------------------------------

# id(query) -> (scoring started, scoring ended, batch size, on the executor) in ns since the
# epoch, for the traced queries only; filled by the scoring function (on the loop or in the
# executor), read by the query's own call once its answer has come.
_waiting: dict[int, tuple[int, int, int, bool] | None] = {}


def timed(score: Callable[[K, Sequence[Q]], Sequence[R]]) -> Callable[[K, Sequence[Q]], Sequence[R]]:
    """The batcher's scoring function, noting when each traced query's batch was scored. With
    no traced query waiting it costs one dict truth test per batch."""

    def scoring(key: K, queries: Sequence[Q]) -> Sequence[R]:
        if not _waiting:
            return score(key, queries)
        started = time.time_ns()
        results = score(key, queries)
        ended = time.time_ns()
        on_executor = threading.current_thread().name.startswith(EXECUTOR_PREFIX)
        for q in queries:
            if id(q) in _waiting:
                _waiting[id(q)] = (started, ended, len(queries), on_executor)
        return results

    return scoring


async def batched(batcher: LoopBatcher[K, Q, R], key: K, query: Q) -> R:
    """`batcher.submit(key, query)`; when the call is traced, with a `batch.wait` event (queued,
    waiting for company and for the batch before it: its duration an attribute, its time when
    the scoring began) and a `score` span (the batch's product and top-k, its size an
    attribute), placed by their times once the answer has come."""
    active = _active.get()
    if active is None:
        return await batcher.submit(key, query)
    submitted = time.time_ns()
    _waiting[id(query)] = None
    try:
        result = await batcher.submit(key, query)
    finally:
        timing = _waiting.pop(id(query), None)
    if timing is not None:
        started, ended, size, on_executor = timing
        active.add_event("batch.wait", {"reco.duration_ms": (started - submitted) / 1e6}, started)
        active.child("score", {"reco.batch.size": size, "reco.batch.executor": on_executor}, started).end(ended)
    return result


# -- the SDK ------------------------------------------------------------------------------------------


class _SdkLogBridge(logging.Handler):
    """The SDK's and exporter's own warnings (a collector unreachable, spans dropped) as
    JSON log lines like every other, not stdlib's bare stderr text."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            write = log.warning if record.levelno >= logging.WARNING else log.info
            write("tracing_sdk", logger=record.name, message=record.getMessage())
        except Exception:  # a log line must never fail the exporter's thread
            pass


def build(settings: ServeSettings) -> Tracing | None:
    """The process's Tracing, or None when tracing is off. Call after the fork."""
    if not endpoint_configured(settings):
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased

    from reco_sidecar.serving.trace_export import SpanExporter
    from reco_sidecar.serving.trace_spans import Recorder

    otel_logger = logging.getLogger("opentelemetry")
    if not any(isinstance(h, _SdkLogBridge) for h in otel_logger.handlers):
        otel_logger.addHandler(_SdkLogBridge(logging.WARNING))
        otel_logger.propagate = False
    attributes: dict[str, Any] = {"process.pid": os.getpid()}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = DEFAULT_SERVICE_NAME
    # None: the SDK reads OTEL_TRACES_SAMPLER(_ARG), parent-based always-on by default.
    sampler: Sampler | None = (None if settings.trace_sample_ratio is None
                               else ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)))
    # shutdown_on_exit off: its atexit flush would wait up to 30 s on a dead collector.
    provider = TracerProvider(sampler=sampler, resource=Resource.create(attributes), shutdown_on_exit=False)
    exporter = SpanExporter(endpoint=settings.otlp_endpoint or None)
    processor = BatchSpanProcessor(exporter)  # OTEL_BSP_* honoured
    provider.add_span_processor(processor)  # so that the provider's shutdown flushes it
    log.info("tracing_on", endpoint=settings.otlp_endpoint or "(from OTEL_* variables)",
             sample_ratio=settings.trace_sample_ratio)
    return Tracing(provider, Recorder(provider, processor), settings.host, settings.port)
