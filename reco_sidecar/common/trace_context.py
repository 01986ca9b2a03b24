"""The trace a log line belongs to: the W3C trace and span ids of the call being served.

Set by the serving layer when a traced call starts (in that call's own asyncio task, or the
copied context of a thread working for it) and read by the log set-up (common/logs.py), so
every line written on the call's behalf carries `trace_id` and `span_id`, whatever module
writes it. A plain ContextVar: nothing here knows OpenTelemetry, and with tracing off the
variable is never set and a log line pays one lookup.
"""

from __future__ import annotations

import contextlib
from collections.abc import MutableMapping
from contextvars import ContextVar, Token
from typing import Any

# (trace_id, span_id) as lowercase hex, 32 and 16 digits: the form a traceparent header and
# Jaeger's UI show, so an id copied from a log line finds the trace.
_current: ContextVar[tuple[str, str] | None] = ContextVar("reco_trace", default=None)


def bind(trace_id: int, span_id: int) -> Token[tuple[str, str] | None]:
    return _current.set((format(trace_id, "032x"), format(span_id, "016x")))


def unbind(token: Token[tuple[str, str] | None]) -> None:
    """Restores what `bind` replaced; a token from another context (a call ended by a task other
    than its own) is dropped: that context dies with its task anyway."""
    with contextlib.suppress(ValueError, RuntimeError):
        _current.reset(token)


def current() -> tuple[str, str] | None:
    return _current.get()


def add_trace_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the current call's ids, unless the line names its own."""
    ids = _current.get()
    if ids is not None:
        event.setdefault("trace_id", ids[0])
        event.setdefault("span_id", ids[1])
    return event
