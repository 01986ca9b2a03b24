"""A call's spans, recorded as plain values and handed to the SDK's span processor when they end.

The SDK's `Tracer.start_span` makes a live `Span` per span: a lock, a sampler call, its
attributes cleaned one by one into a bounded mapping, and a `ReadableSpan` copy at its end. A
traced Recommend paid most of tracing's CPU there (bench/tracing_cost.py). Here a span is its
values only (ids, times, attribute dict, events) until it ends, and then becomes the
`ReadableSpan` the SDK itself would have made and goes to the same BatchSpanProcessor. The
SDK's parts decide everything they decide with the SDK's own tracer: the sampler
(`--trace-sample-ratio` or `OTEL_TRACES_SAMPLER`), the id generator, the resource
(`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`), the processor's queue and the exporter.

Only the call's server span asks the sampler; a child span follows its call's decision (what
the parent-based sampler decides for a local parent). Attribute values are the few scalar
kinds this package sets (str, int, float, bool), so they need no cleaning.
"""

from __future__ import annotations

import time
import traceback
from typing import TYPE_CHECKING, Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

import reco_sidecar

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

INSTRUMENTATION = "reco_sidecar.serving"
UNSET = Status(StatusCode.UNSET)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


class Recorder:
    """One serving process's span making: the provider's sampler, ids and resource, and the
    processor finished spans go to."""

    def __init__(self, provider: TracerProvider, processor: SpanProcessor) -> None:
        self.sampler = provider.sampler
        self.ids = provider.id_generator
        self.resource = provider.resource
        self.scope = InstrumentationScope(INSTRUMENTATION, reco_sidecar.__version__)
        self.on_end = processor.on_end

    def root(self, name: str, kind: SpanKind, parent: Context | None, parent_span: SpanContext | None,
             attributes: dict[str, Any]) -> tuple[int, int, OpenSpan | None]:
        """(trace id, span id, the span if it is sampled) of a span whose parent is the
        caller's (`parent_span`, valid, or None for a trace of its own)."""
        trace_id = parent_span.trace_id if parent_span is not None else self.ids.generate_trace_id()
        span_id = self.ids.generate_span_id()
        decision = self.sampler.should_sample(parent, trace_id, name, kind, attributes)
        if decision.decision is not Decision.RECORD_AND_SAMPLE:  # RECORD_ONLY spans are never exported
            return trace_id, span_id, None
        if decision.attributes:
            attributes.update(decision.attributes)
        context = SpanContext(trace_id, span_id, False, _SAMPLED, decision.trace_state)
        return trace_id, span_id, OpenSpan(self, name, kind, context, parent_span, attributes, time.time_ns())


class OpenSpan:
    """A sampled span not yet ended. Its events are appended by whoever works for it; it
    ends once, by its owner."""

    __slots__ = ("attributes", "context", "events", "kind", "name", "parent", "recorder", "start", "status")

    def __init__(self, recorder: Recorder, name: str, kind: SpanKind, context: SpanContext,
                 parent: SpanContext | None, attributes: dict[str, Any], start: int) -> None:
        self.recorder = recorder
        self.name = name
        self.kind = kind
        self.context = context
        self.parent = parent
        self.attributes = attributes
        self.start = start
        self.events: list[Event] = []
        self.status = UNSET

    def child(self, name: str, attributes: dict[str, Any], start: int | None = None) -> OpenSpan:
        parent = self.context
        trace_state: TraceState = parent.trace_state
        context = SpanContext(parent.trace_id, self.recorder.ids.generate_span_id(), False, _SAMPLED, trace_state)
        return OpenSpan(self.recorder, name, SpanKind.INTERNAL, context, parent, attributes,
                        time.time_ns() if start is None else start)

    def add_event(self, name: str, attributes: dict[str, Any], timestamp: int | None = None) -> None:
        self.events.append(Event(name, attributes, time.time_ns() if timestamp is None else timestamp))

    def fail(self, error: BaseException) -> None:
        """The span's status ERROR with `error`'s message, and the exception as an event, as
        the SDK's `record_exception` writes it."""
        kind = type(error)
        module = kind.__module__
        self.add_event("exception", {
            "exception.type": f"{module}.{kind.__qualname__}" if module and module != "builtins" else kind.__qualname__,
            "exception.message": str(error),
            "exception.stacktrace": "".join(traceback.format_exception(error)),
            "exception.escaped": "False",
        })
        self.status = Status(StatusCode.ERROR, str(error))

    def end(self, end: int | None = None) -> None:
        recorder = self.recorder
        recorder.on_end(ReadableSpan(
            name=self.name, context=self.context, parent=self.parent, resource=recorder.resource,
            attributes=self.attributes, events=self.events, kind=self.kind, status=self.status,
            start_time=self.start, end_time=time.time_ns() if end is None else end,
            instrumentation_scope=recorder.scope))
