"""structlog set-up: JSON (or console) lines on stderr, stdout kept for the ready line."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import MutableMapping
from typing import Any

import structlog

from reco_sidecar.common.trace_context import add_trace_ids


def configure(level: str = "info", fmt: str = "json") -> None:
    lvl = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: Any = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _add_pid,
            add_trace_ids,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=_line_writer,
        cache_logger_on_first_use=False,
    )


class LineWriter:
    """Writes each log line, newline included, in one write to whatever sys.stderr is now.

    structlog's PrintLogger prints the line and its newline as two writes, each logger with its
    own lock: two threads of one worker (the event loop, the scoring executor, the heartbeat or
    shadow thread) logging at once then merged two lines into one, which no JSON reader can parse.
    One write of the whole line under one process-wide lock keeps lines whole, also between the
    processes sharing the stream (one write(2) each). sys.stderr is looked up at every call: a
    caller or a test may swap it after logging is configured.
    """

    def msg(self, message: str) -> None:
        with _write_lock:
            sys.stderr.write(message + "\n")
            sys.stderr.flush()

    log = debug = info = warning = warn = error = err = critical = fatal = exception = failure = msg


def _line_writer(*_: Any) -> LineWriter:
    return _WRITER


def _new_lock() -> None:
    # A child forked while another thread held the lock would otherwise never get it.
    global _write_lock
    _write_lock = threading.Lock()


_write_lock = threading.Lock()
_WRITER = LineWriter()
os.register_at_fork(after_in_child=_new_lock)


def _add_pid(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event.setdefault("pid", os.getpid())
    return event


def get(name: str) -> Any:
    return structlog.get_logger(name)
