"""W3C trace context (`traceparent`, `tracestate`) read and written as strings, by the rules
of OpenTelemetry's own TraceContextTextMapPropagator.

Two uses. A call's metadata: the SDK's `propagate.extract` goes through the composite
propagator (trace context and baggage), each building contexts the sidecar never reads; it
was a quarter of a traced Recommend's CPU on the event loop (bench/tracing_cost.py). When the
configured propagators are W3C's (the default, `OTEL_PROPAGATORS` unset), `parse` reads the
two headers directly and gives the same span context. And the supervisor's control messages:
a Reload's context crosses to every worker as one traceparent string (runtime/wire.py), so
each worker's part of the rollout is a span in the caller's trace.
"""

from __future__ import annotations

import re

from opentelemetry import propagate
from opentelemetry.trace import SpanContext, TraceFlags, TraceState

# The propagator's own pattern and limits (opentelemetry/trace/propagation/tracecontext.py).
_TRACEPARENT = re.compile(r"[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:(-.*)|[ \t]*)$")
MAX_TRACEPARENT = 512
MAX_TRACESTATE = 8192
# What the default propagators (OTEL_PROPAGATORS=tracecontext,baggage) read: baggage is
# never used by the sidecar, so these read as W3C trace context alone.
_W3C_FIELDS = ({"traceparent", "tracestate"}, {"traceparent", "tracestate", "baggage"})


def w3c_propagation() -> bool:
    """True when the process's propagators read W3C trace context and nothing the sidecar
    uses besides: `parse` then gives what `propagate.extract` gives."""
    return propagate.get_global_textmap().fields in _W3C_FIELDS


def parse(traceparent: str | None, tracestate: str | None = None) -> SpanContext | None:
    """The remote span context a `traceparent` (and `tracestate`) names, or None when it is
    absent or invalid, as the propagator decides."""
    if not traceparent or len(traceparent) > MAX_TRACEPARENT:
        return None
    match = _TRACEPARENT.match(traceparent)
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if trace_id == "0" * 32 or span_id == "0" * 16 or version == "ff" or (version == "00" and rest):
        return None
    state = None
    if tracestate is not None and len(tracestate) <= MAX_TRACESTATE:
        state = TraceState.from_header([tracestate])
    return SpanContext(int(trace_id, 16), int(span_id, 16), True, TraceFlags(int(flags, 16)), state)


def format_context(context: SpanContext) -> str:
    """The `traceparent` of a span context (the propagator's inject)."""
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
