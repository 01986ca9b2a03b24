"""Stopping one thread of another process from outside, the others running on: what a thread
blocked for good (a wedged event loop) looks like to the rest of its process. SIGSTOP stops
every thread, so this uses ptrace: PTRACE_SEIZE then PTRACE_INTERRUPT put only that thread in
a stop until PTRACE_DETACH. Every ptrace request must come from the thread that seized, so one
helper thread of the test does them all. Needs CAP_SYS_PTRACE (root, as in CI)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import threading
from collections.abc import Callable, Iterator

PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
WALL = 0x40000000


def available() -> bool:
    return os.geteuid() == 0


def _ptrace(request: int, tid: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.restype = ctypes.c_long
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    if libc.ptrace(request, tid, None, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"ptrace({request:#x}, {tid}): {os.strerror(err)}")


@contextlib.contextmanager
def stopped_thread(tid: int) -> Iterator[None]:
    """Thread `tid` stays stopped inside the block (or until its process is killed)."""
    jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
    done: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()

    def tracer() -> None:
        while (job := jobs.get()) is not None:
            try:
                job()
                done.put(None)
            except BaseException as e:
                done.put(e)

    def stop() -> None:
        _ptrace(PTRACE_SEIZE, tid)
        _ptrace(PTRACE_INTERRUPT, tid)
        os.waitpid(tid, WALL)  # returns once the thread is in its stop

    def release() -> None:
        try:
            _ptrace(PTRACE_DETACH, tid)  # it runs again
        except ProcessLookupError:
            # Killed while traced: the kernel reports its death to the tracer first and to its
            # parent only once the tracer has collected it.
            with contextlib.suppress(ChildProcessError):
                os.waitpid(tid, WALL)

    thread = threading.Thread(target=tracer, name="ptrace", daemon=True)
    thread.start()
    jobs.put(stop)
    error = done.get(timeout=30)
    if error is not None:
        jobs.put(None)
        raise error
    try:
        yield
    finally:
        jobs.put(release)
        done.get(timeout=30)
        jobs.put(None)
        thread.join(5)
