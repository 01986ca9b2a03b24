"""serving/trace_parent.py reads W3C trace context exactly as OpenTelemetry's own propagator
does: the same span context for every header the propagator takes, nothing for every header
it refuses, and the traceparent it writes is the one the propagator writes."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from reco_sidecar.serving import trace_parent

TRACE, SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"

HEADERS = [
    (f"00-{TRACE}-{SPAN}-01", None),
    (f"00-{TRACE}-{SPAN}-00", "vendor=x1,k=v"),
    (f" \t00-{TRACE}-{SPAN}-01 \t", "a=1"),
    (f"01-{TRACE}-{SPAN}-01-future", None),  # a later version may add fields
    (f"00-{TRACE}-{SPAN}-01-extra", None),  # version 00 may not
    (f"ff-{TRACE}-{SPAN}-01", None),
    (f"00-{'0' * 32}-{SPAN}-01", None),
    (f"00-{TRACE}-{'0' * 16}-01", None),
    (f"00-{TRACE.upper()}-{SPAN}-01", None),
    (f"00-{TRACE}-{SPAN}-1", None),
    (f"00-{TRACE}-{SPAN}-01" + " " * 600, None),  # longer than the propagator reads
    ("", None),
    (None, "a=1"),
    (f"00-{TRACE}-{SPAN}-01", "k=" + "v" * 9000),  # a tracestate past its limit is dropped
    (f"00-{TRACE}-{SPAN}-01", "not a list entry"),
]


def _propagators(traceparent: str | None, tracestate: str | None) -> SpanContext | None:
    carrier = {k: v for k, v in (("traceparent", traceparent), ("tracestate", tracestate)) if v is not None}
    found = trace.get_current_span(TraceContextTextMapPropagator().extract(carrier)).get_span_context()
    return found if found.is_valid else None


@pytest.mark.parametrize(("traceparent", "tracestate"), HEADERS)
def test_parse_gives_what_the_propagator_extracts(traceparent: str | None, tracestate: str | None) -> None:
    ours = trace_parent.parse(traceparent, tracestate)
    theirs = _propagators(traceparent, tracestate)
    assert ours == theirs
    if theirs is not None:
        assert ours is not None and ours.is_remote
        assert ours.trace_state == theirs.trace_state and ours.trace_flags == theirs.trace_flags


@pytest.mark.parametrize("flags", [0, 1])
def test_the_traceparent_written_is_the_propagators(flags: int) -> None:
    context = SpanContext(0xABC, 0xDEF, False, TraceFlags(flags), TraceState([("k", "v")]))
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, trace.set_span_in_context(NonRecordingSpan(context)))
    assert trace_parent.format_context(context) == carrier["traceparent"]
    assert trace_parent.parse(carrier["traceparent"]) == SpanContext(0xABC, 0xDEF, True, TraceFlags(flags))


def test_the_default_propagators_are_read_as_w3c() -> None:
    assert trace_parent.w3c_propagation()
