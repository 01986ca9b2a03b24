"""Why a worker stops serving: what its signal handlers and its control thread tell the
serving loop (a queue between threads of one process)."""

from __future__ import annotations

import enum


class StopReason(enum.Enum):
    SHUTDOWN = "shutdown"  # SIGTERM, or the supervisor's Shutdown
    SHUTDOWN_FAST = "shutdown_fast"  # the supervisor's Shutdown(fast): a short grace
    INTERRUPT = "interrupt"  # SIGINT
    SUPERVISOR_GONE = "supervisor_gone"  # the control channel closed: a short grace

    @property
    def fast(self) -> bool:
        return self in (StopReason.SHUTDOWN_FAST, StopReason.SUPERVISOR_GONE)
