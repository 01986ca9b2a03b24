"""Facts about the current RPC that the servicer learns and the interceptors report
(log line, metrics): model, version, counts. One dict per call, in a context variable."""

from __future__ import annotations

import contextvars
from typing import Any

_info: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("reco_call_info", default=None)


def begin() -> dict[str, Any]:
    info: dict[str, Any] = {}
    _info.set(info)
    return info


def annotate(**values: Any) -> None:
    info = _info.get()
    if info is not None:
        info.update(values)


def end() -> None:
    _info.set(None)
