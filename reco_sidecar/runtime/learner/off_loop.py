"""Running one long call on a thread of its own while the learner's loop goes on.

Not asyncio.to_thread: its executor's threads are joined when the loop shuts down, so a
learner told to stop in the middle of a solve would wait for the solve. This thread is a
daemon: a stopping learner leaves it (the solve's table was never published, and the next
learner rebuilds from the journal)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def off_loop(fn: Callable[..., T], *args: object) -> T:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def run() -> None:
        try:
            result = fn(*args)
        except BaseException as e:  # handed to the awaiting task, whatever it is
            error = e
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
                loop.call_soon_threadsafe(settle, lambda: future.set_exception(error))
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, lambda: future.set_result(result))

    threading.Thread(target=run, name="learner-solve", daemon=True).start()
    return await future
