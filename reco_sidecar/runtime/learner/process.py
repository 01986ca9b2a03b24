"""The learner process: forked by the supervisor, it accepts the workers' connections on the
listening socket the supervisor bound (so connections wait in its backlog while a restarted
learner replays the journal), and hears the served version on its control channel."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import os
import signal
import socket
from typing import TYPE_CHECKING

from reco_sidecar.common import logs
from reco_sidecar.common.exit_codes import ExitCode
from reco_sidecar.online.events import Event
from reco_sidecar.runtime import wire as m
from reco_sidecar.runtime.channel import Channel
from reco_sidecar.runtime.learner.framing import frame, read_frame
from reco_sidecar.runtime.learner.heartbeat import Beats
from reco_sidecar.runtime.learner.learner import Learner
from reco_sidecar.runtime.learner.off_loop import off_loop
from reco_sidecar.settings import ServeSettings

if TYPE_CHECKING:
    from reco_sidecar.runtime.learner.stream import EventStream

log = logs.get(__name__)
PR_SET_PDEATHSIG = 1
# The learner's solves are throughput work beside the workers' latency work on the same
# cores: below their priority, a worker that wakes with a Recommend takes the core from a
# solve at once, while an idle core still runs the learner at full speed. Nice 10 still
# gives it about a tenth of a busy core (CFS weights 110 against 1024), so a saturated pool
# slows Feedback's answer but never starves the learner's heartbeat. Measured in
# docs/online.md ("Measured throughput"). Visibility is unaffected: the table is written
# before Feedback returns, whatever the learner's priority.
NICENESS = 10


def run(settings: ServeSettings, listener: socket.socket, control: Channel, version: int) -> int:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    with contextlib.suppress(OSError):  # lowering one's own priority is always allowed; be safe
        os.nice(NICENESS)
    stream = None
    if settings.online_stream is not None:
        from reco_sidecar.runtime.learner.stream import EventStream

        stream = EventStream(settings.online_stream, settings.online_stream_key or f"reco:feedback:"
                             f"{settings.default_model}", settings.online_stream_maxlen,
                             settings.online_path / "stream-cursor")
    held: list[Learner] = []
    beats = Beats(control, settings.worker_timeout, lambda: len(held[0].ids) if held else 0)
    try:
        with beats.covered():  # the journal's replay and the first solve: work, not a hang
            held.append(Learner(model_root=settings.model_root, model=settings.default_model,
                                directory=settings.online_path, max_users=settings.online_max_users,
                                retention=settings.online_retention_events,
                                fsync=settings.online_fsync == "always",
                                publish=stream.publish if stream is not None else None))
            held[0].serve(version)
        return asyncio.run(_serve(held[0], listener, control, stream, beats))
    finally:
        if held:
            held[0].close()
        if stream is not None:
            stream.close()


async def _serve(learner: Learner, listener: socket.socket, control: Channel, stream: EventStream | None,
                 beats: Beats) -> int:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[m.Feed, asyncio.StreamWriter]] = asyncio.Queue()
    versions: asyncio.Queue[m.ServeVersion] = asyncio.Queue()
    ended: asyncio.Future[None] = loop.create_future()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                message = m.decode_to_learner(await read_frame(reader))
                if isinstance(message, m.Feed):
                    queue.put_nowait((message, writer))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except ValueError as e:
            log.error("online_message_invalid", error=str(e))
        finally:
            writer.close()

    def controlled() -> None:
        try:
            message = control.recv(m.decode_to_learner)
        except ValueError as e:
            log.error("online_message_invalid", error=str(e))
            return
        if message is None:
            stop()  # the supervisor is gone
            return
        if isinstance(message, m.ServeVersion):
            versions.put_nowait(message)

    async def follow_versions() -> None:
        """One version message at a time, in order (a reload's end waits for its start's
        solve). The solve runs on a thread of its own, so Feedback is answered meanwhile."""
        while True:
            message = await versions.get()
            try:
                cut = learner.begin(message.version)
                if cut is not None:
                    try:
                        solved = await off_loop(learner.solve, message.version, cut)
                    except BaseException:
                        learner.abandon(message.version)
                        raise
                    with beats.covered():  # the events kept meanwhile, applied on the loop
                        learner.finish(message.version, solved)
                learner.settle(message.version, exclusive=message.exclusive)
            except Exception as e:  # a version that cannot be opened: keep learning on the old one
                log.error("online_version_failed", version=message.version, error=str(e))

    async def commit() -> None:
        while True:
            group = [await queue.get()]
            while not queue.empty():
                group.append(queue.get_nowait())
            answers = learner.feed([f for f, _ in group])
            for (_, writer), answer in zip(group, answers, strict=True):
                if not writer.is_closing():
                    writer.write(frame(answer))

    def stop() -> None:
        if not ended.done():
            ended.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    loop.add_reader(control.fileno(), controlled)
    server = await asyncio.start_unix_server(connection, sock=listener)
    committer = loop.create_task(commit())
    follower = loop.create_task(follow_versions())
    beating = loop.create_task(beats.beat_forever())
    stop_reading = None
    if stream is not None:
        from reco_sidecar.runtime.learner.stream import start

        def absorbed(events: list[Event], cursor: str) -> None:
            """On the loop, between two commit groups: the learner has one thread of work."""
            learner.absorb(events)
            stream.save_cursor(cursor)

        def deliver(events: list[Event], cursor: str) -> None:
            """From the reader thread: waits until the loop journaled them (back-pressure)."""
            done: concurrent.futures.Future[None] = concurrent.futures.Future()

            def run() -> None:
                try:
                    absorbed(events, cursor)
                    done.set_result(None)
                except BaseException as e:
                    done.set_exception(e)

            loop.call_soon_threadsafe(run)
            done.result()

        _, stop_reading = start(stream, deliver)
    log.info("online_learner_ready", pid=os.getpid())
    await ended
    if stop_reading is not None:
        stop_reading.set()
    committer.cancel()
    follower.cancel()
    beating.cancel()
    server.close()
    return ExitCode.OK
