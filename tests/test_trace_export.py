"""serving/trace_export.py: the sidecar's span encoding sends the same OTLP request as the SDK's
own encoder, for the spans the sidecar makes and for every other field a span can carry."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from reco_sidecar.serving.trace_export import ATTRIBUTE_CACHE_MAX, SpanEncoder
from reco_sidecar.serving.trace_spans import Recorder


def _sdk_spans(limits: SpanLimits | None = None) -> list[ReadableSpan]:
    """Spans made by the SDK's own tracer, with every field the encoder writes."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "t", "process.pid": 7}, "https://schema/r"),
                              span_limits=limits)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("scope-a", "1.2", schema_url="https://schema/s")
    other = provider.get_tracer("scope-b")
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1),
                         trace_state=TraceState([("vendor", "x1"), ("k", "v")]))
    with tracer.start_as_current_span("root", context=trace.set_span_in_context(NonRecordingSpan(remote)),
                                      kind=SpanKind.SERVER,
                                      attributes={"s": "é ünïcode", "i": -5, "big": 2**40, "f": 0.0, "b": False,
                                                  "arr": ["a", "b"], "ints": [1, 2], "empty": ""}) as root:
        root.add_event("ev", {"reco.duration_ms": 1.25, "n": 3})
        root.add_event("bare")
        with other.start_as_current_span("child", links=[Link(remote, {"why": "batch"})]) as child:
            child.set_status(Status(StatusCode.ERROR, "it broke"))
            child.record_exception(ValueError("bad value"))
        for i in range(3):
            with tracer.start_as_current_span(f"kind-{i}", kind=[SpanKind.CLIENT, SpanKind.PRODUCER,
                                                                  SpanKind.CONSUMER][i]) as s:
                s.set_attribute("i", i)
                s.set_status(Status(StatusCode.OK))
    provider.shutdown()
    return list(memory.get_finished_spans())


def _same(spans: list[ReadableSpan], encoder: SpanEncoder | None = None) -> None:
    ours = ExportTraceServiceRequest.FromString((encoder or SpanEncoder()).request(spans))
    assert ours == encode_spans(spans)


def test_the_sdks_spans_encode_to_the_sdks_request() -> None:
    spans = _sdk_spans()
    assert len(spans) == 5
    _same(spans)


def test_dropped_attributes_and_events_are_counted_as_the_sdk_counts_them() -> None:
    spans = _sdk_spans(SpanLimits(max_span_attributes=2, max_events=1, max_links=0, max_event_attributes=1))
    assert any(s.dropped_attributes for s in spans) and any(s.dropped_events for s in spans)
    _same(spans)


def test_the_sidecars_own_spans_encode_to_the_sdks_request() -> None:
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(1.0)),
                              resource=Resource.create({"service.name": "reco-sidecar"}))
    memory = InMemorySpanExporter()
    recorder = Recorder(provider, SimpleSpanProcessor(memory))
    parent = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(1))
    _, _, call = recorder.root("reco.v1.Recommender/Recommend", SpanKind.SERVER,
                               trace.set_span_in_context(NonRecordingSpan(parent)), parent,
                               {"rpc.system": "grpc", "network.peer.port": 40000})
    assert call is not None
    call.add_event("batch.wait", {"reco.duration_ms": 0.25})
    call.child("score", {"reco.batch.size": 3, "reco.batch.executor": True}).end()
    failing = call.child("chunk", {"reco.chunk.first_index": 0})
    failing.fail(RuntimeError("chunk failed"))
    failing.end()
    call.attributes.update({"rpc.grpc.status_code": 0, "reco.items": 5})
    call.end()
    spans = list(memory.get_finished_spans())
    assert [s.name for s in spans] == ["score", "chunk", "reco.v1.Recommender/Recommend"]
    assert spans[2].parent == parent and spans[0].parent == spans[2].context
    assert spans[1].status.status_code is StatusCode.ERROR and spans[1].events[0].name == "exception"
    _same(spans)


def test_the_attribute_store_starts_over_when_full_and_still_encodes_the_same() -> None:
    """Values that never repeat (a port, a duration) fill the store of encoded attributes; it
    is emptied when full, so it stays bounded, and what it encodes afterwards is still the
    SDK's request."""
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t")
    encoder = SpanEncoder()
    kept = []
    for r in range(3):
        memory.clear()
        for i in range(ATTRIBUTE_CACHE_MAX // 2):
            tracer.start_span("s", attributes={"port": i + r * ATTRIBUTE_CACHE_MAX, "same": "x"}).end()
        spans = list(memory.get_finished_spans())
        assert ExportTraceServiceRequest.FromString(encoder.request(spans)) == encode_spans(spans)
        kept.append(encoder.attributes_kept)
    assert max(kept) <= ATTRIBUTE_CACHE_MAX
    # 2,048 new attributes a round (plus one that repeats): the store filled during the second
    # round and started over, so it holds fewer after it than after the first
    assert kept[0] == ATTRIBUTE_CACHE_MAX // 2 + 1
    assert kept[1] < kept[0] < kept[2]
