"""The OTLP/gRPC exporter of the OpenTelemetry SDK with a cheaper encoding of the spans.

The SDK's encoder builds a protobuf object per span, per event and per attribute, which for
a traced Recommend (two spans, two events, ~17 attributes) cost more CPU than making the
spans (bench/tracing_cost.py). Here each span is written straight in protobuf's wire format,
and an attribute's encoded key and value is kept for the next span that has the same one:
most of a call's attributes repeat (`rpc.system`, the model, its version, the status code...).
The batch's bytes are parsed once, in C, into the request the SDK's exporter sends, so its
channel, headers, compression, retries and `OTEL_EXPORTER_OTLP_*` settings are the SDK's.

What this encodes is the same request as the SDK's `encode_spans` for the same spans
(tests/test_trace_export.py compares them); anything this module does not write itself (links,
array or map attributes) is encoded by the SDK's own functions.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.exporter.otlp.proto.common._internal import (
    _encode_instrumentation_scope,
    _encode_key_value,
    _encode_resource,
)
from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import _SPAN_KIND_MAP, _encode_links
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.trace import StatusCode

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

_DOUBLE = struct.Struct("<d").pack
_FIXED64 = struct.Struct("<Q").pack
_FIXED32 = struct.Struct("<I").pack
# Distinct attribute (key, value) pairs kept encoded; past this the store starts over, so a
# value that never repeats (a duration, a port) cannot grow it without bound.
ATTRIBUTE_CACHE_MAX = 4096
# span flags (trace.proto): the span says whether its parent is remote, and if it is
HAS_IS_REMOTE = 0x100
IS_REMOTE = 0x200

# Field tags, (number << 3) | wire type, as bytes.
# ExportTraceServiceRequest / ResourceSpans / ScopeSpans
_RESOURCE_SPANS = b"\x0a"
_RESOURCE, _SCOPE_SPANS, _SCHEMA_URL = b"\x0a", b"\x12", b"\x1a"
_SCOPE, _SPANS = b"\x0a", b"\x12"
# Span
_TRACE_ID, _SPAN_ID, _TRACE_STATE, _PARENT_ID = b"\x0a\x10", b"\x12\x08", b"\x1a", b"\x22\x08"
_NAME, _START, _END = b"\x2a", b"\x39", b"\x41"
_ATTRIBUTE, _DROPPED_ATTRIBUTES, _EVENT, _DROPPED_EVENTS = b"\x4a", b"\x50", b"\x5a", b"\x60"
_LINK, _DROPPED_LINKS, _STATUS, _FLAGS = b"\x6a", b"\x70", b"\x7a", b"\x85\x01"
# Span.Event
_EVENT_TIME, _EVENT_NAME, _EVENT_ATTRIBUTE, _EVENT_DROPPED = b"\x09", b"\x12", b"\x1a", b"\x20"
# Status
_STATUS_MESSAGE, _STATUS_CODE = b"\x12", b"\x18"
# KeyValue{key, value: AnyValue{double_value}}, the AnyValue being 9 bytes
_KEY, _DOUBLE_VALUE = b"\x0a", b"\x12\x09\x21"

# An unset status without a message, and the span flags: the same bytes for nearly every span
_STATUS_UNSET = _STATUS + b"\x00"
_FLAGS_LOCAL = _FLAGS + _FIXED32(HAS_IS_REMOTE)
_FLAGS_REMOTE = _FLAGS + _FIXED32(HAS_IS_REMOTE | IS_REMOTE)

_KIND = {kind: b"\x30" + bytes((int(value),)) for kind, value in _SPAN_KIND_MAP.items()}


def _varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    return tag + _varint(len(payload)) + payload


class SpanEncoder:
    """ReadableSpans → an ExportTraceServiceRequest's bytes. One per exporter: its caches are
    used by the exporter's thread alone."""

    def __init__(self) -> None:
        self._attributes: dict[tuple[bytes, str, type, Any], bytes] = {}
        self._double_heads: dict[tuple[bytes, str], bytes] = {}
        self._names: dict[str, bytes] = {}
        # id(object) -> (the object, kept alive so its id is not reused; its encoding)
        self._resources: dict[int, tuple[Any, bytes]] = {}
        self._scopes: dict[int, tuple[Any, bytes]] = {}

    @property
    def attributes_kept(self) -> int:
        """How many encoded attributes are kept for reuse: at most ATTRIBUTE_CACHE_MAX."""
        return len(self._attributes)

    def request(self, spans: Sequence[ReadableSpan]) -> bytes:
        # resource -> scope -> spans, each by identity (one provider's spans share both objects)
        groups: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
        for span in spans:
            resource, scope = span.resource, span.instrumentation_scope
            by_scope = groups.get(id(resource))
            if by_scope is None:
                by_scope = groups[id(resource)] = (resource, {})
            encoded = by_scope[1].get(id(scope))
            if encoded is None:
                encoded = by_scope[1][id(scope)] = (scope, [])
            encoded[1].append(_field(_SPANS, self.span(span)))
        out = []
        for resource, scopes in groups.values():
            resource_spans = self._resource(resource)
            for scope, encoded_spans in scopes.values():
                scope_spans = self._scope(scope) + b"".join(encoded_spans)
                if scope is not None and scope.schema_url:
                    scope_spans += _field(_SCHEMA_URL, scope.schema_url.encode())
                resource_spans += _field(_SCOPE_SPANS, scope_spans)
            if resource.schema_url:
                resource_spans += _field(_SCHEMA_URL, resource.schema_url.encode())
            out.append(_field(_RESOURCE_SPANS, resource_spans))
        return b"".join(out)

    def span(self, span: ReadableSpan) -> bytes:
        context = span.context
        assert context is not None
        parent = span.parent
        parts = [_TRACE_ID, context.trace_id.to_bytes(16, "big"), _SPAN_ID, context.span_id.to_bytes(8, "big")]
        if context.trace_state:
            state = ",".join([f"{k}={v}" for k, v in context.trace_state.items()])
            parts.append(_field(_TRACE_STATE, state.encode()))
        if parent is not None:
            parts += (_PARENT_ID, parent.span_id.to_bytes(8, "big"))
        parts += (self._name(span.name), _KIND[span.kind], _START, _FIXED64(span.start_time or 0),
                  _END, _FIXED64(span.end_time or 0))
        attributes = span.attributes
        if attributes:
            field = self._attribute
            parts += [field(_ATTRIBUTE, k, v) for k, v in attributes.items()]
        if span.dropped_attributes:
            parts.append(_DROPPED_ATTRIBUTES + _varint(span.dropped_attributes))
        for event in span.events:
            body = _EVENT_TIME + _FIXED64(event.timestamp) + _field(_EVENT_NAME, event.name.encode())
            if event.attributes:
                field = self._attribute
                body += b"".join([field(_EVENT_ATTRIBUTE, k, v) for k, v in event.attributes.items()])
            if event.dropped_attributes:
                body += _EVENT_DROPPED + _varint(event.dropped_attributes)
            parts.append(_field(_EVENT, body))
        if span.dropped_events:
            parts.append(_DROPPED_EVENTS + _varint(span.dropped_events))
        if span.links:
            for link in _encode_links(span.links) or ():
                parts.append(_field(_LINK, link.SerializeToString()))
        if span.dropped_links:
            parts.append(_DROPPED_LINKS + _varint(span.dropped_links))
        status = span.status
        if status.status_code is StatusCode.UNSET and not status.description:
            parts.append(_STATUS_UNSET)
        else:
            body = b""
            if status.description:
                body += _field(_STATUS_MESSAGE, status.description.encode())
            if status.status_code.value:
                body += _STATUS_CODE + _varint(status.status_code.value)
            parts.append(_field(_STATUS, body))
        parts.append(_FLAGS_REMOTE if parent is not None and parent.is_remote else _FLAGS_LOCAL)
        return b"".join(parts)

    def _name(self, name: str) -> bytes:
        """A span name's field: a handful of names, each encoded once."""
        encoded = self._names.get(name)
        if encoded is None:
            if len(self._names) >= ATTRIBUTE_CACHE_MAX:
                self._names.clear()
            encoded = self._names[name] = _field(_NAME, name.encode())
        return encoded

    def _attribute(self, tag: bytes, key: str, value: Any) -> bytes:
        """One attribute as a whole field (`tag`, length, KeyValue): kept for the next span with
        the same attribute, so a repeated one costs a dict lookup."""
        kind = type(value)
        if kind is float:  # durations: never the same twice, so not kept; the field's head is
            head = self._double_heads.get((tag, key))
            if head is None:
                name = _field(_KEY, key.encode())
                head = self._double_heads[(tag, key)] = tag + _varint(len(name) + 11) + name + _DOUBLE_VALUE
            return head + _DOUBLE(value)
        if kind is not str and kind is not int and kind is not bool:
            return _field(tag, bytes(_encode_key_value(key, value).SerializeToString()))
        cache_key = (tag, key, kind, value)
        encoded = self._attributes.get(cache_key)
        if encoded is None:
            if len(self._attributes) >= ATTRIBUTE_CACHE_MAX:
                self._attributes.clear()
            encoded = self._attributes[cache_key] = _field(
                tag, bytes(_encode_key_value(key, value).SerializeToString()))
        return encoded

    def _resource(self, resource: Any) -> bytes:
        kept = self._resources.get(id(resource))
        if kept is None:
            kept = self._resources[id(resource)] = (
                resource, _field(_RESOURCE, bytes(_encode_resource(resource).SerializeToString())))
        return kept[1]

    def _scope(self, scope: Any) -> bytes:
        if scope is None:
            return b""
        kept = self._scopes.get(id(scope))
        if kept is None:
            encoded = _encode_instrumentation_scope(scope)
            kept = self._scopes[id(scope)] = (scope, _field(_SCOPE, bytes(encoded.SerializeToString())))
        return kept[1]


class SpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/gRPC span exporter, encoding with SpanEncoder."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._encoder = SpanEncoder()

    def _translate_data(self, data: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
        return ExportTraceServiceRequest.FromString(self._encoder.request(data))
