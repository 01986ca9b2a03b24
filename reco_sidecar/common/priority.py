"""Background work (hashing a version, loading one beside the serving model) runs below the
serving threads' CPU priority, so on a busy machine it takes the CPU the event loops leave
idle instead of theirs (docs/performance.md: a reload storm's p99 went from 3.8-4.8 x the
steady one to 1.4-1.5 x).

Linux applies a nice value per thread, and threads a thread starts inherit it. The value is
relative to the process's own, and an unprivileged process cannot raise it back: call this
only on a thread that does background work for good."""

from __future__ import annotations

import contextlib
import os
import threading

BACKGROUND_NICENESS = 10
MAX_NICE = 19


def lower_this_thread() -> None:
    with contextlib.suppress(OSError):
        me = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, me, min(MAX_NICE, os.getpriority(os.PRIO_PROCESS, me) + BACKGROUND_NICENESS))
