"""The learner process: forked by the supervisor, it accepts the workers' connections on the
listening socket the supervisor bound (so connections wait in its backlog while a restarted
learner replays the journal), and hears the served version on its control channel."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket

from reco_sidecar.common import logs
from reco_sidecar.runtime import messages as m
from reco_sidecar.runtime.control import Channel
from reco_sidecar.runtime.exit_codes import ExitCode
from reco_sidecar.runtime.learner.framing import frame, read_frame
from reco_sidecar.runtime.learner.learner import Learner
from reco_sidecar.settings import ServeSettings

log = logs.get(__name__)
PR_SET_PDEATHSIG = 1


def run(settings: ServeSettings, listener: socket.socket, control: Channel, version: int) -> int:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    learner = Learner(model_root=settings.model_root, model=settings.default_model,
                      directory=settings.online_path, max_users=settings.online_max_users,
                      retention=settings.online_retention_events, fsync=settings.online_fsync == "always")
    try:
        learner.serve(version)
        return asyncio.run(_serve(learner, listener, control))
    finally:
        learner.close()


async def _serve(learner: Learner, listener: socket.socket, control: Channel) -> int:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[m.Feed, asyncio.StreamWriter]] = asyncio.Queue()
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
            message = control.recv_to_learner()
        except ValueError as e:
            log.error("online_message_invalid", error=str(e))
            return
        if message is None:
            stop()  # the supervisor is gone
            return
        if isinstance(message, m.ServeVersion):
            try:
                learner.serve(message.version, exclusive=message.exclusive)
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
    log.info("online_learner_ready", pid=os.getpid())
    await ended
    committer.cancel()
    server.close()
    return ExitCode.OK
