"""A real Redis (Debian's redis-server 7.0) on a loopback port, for the replicas' event stream
in tests and benchmarks: started in its own session with nothing persisted, stopped by
killing its process group."""

from __future__ import annotations

import contextlib
import pathlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

from harness.procs import kill_group

START_TIMEOUT = 30.0


def redis_binary() -> str | None:
    return shutil.which("redis-server")


@dataclass(frozen=True)
class RedisServer:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def running_redis(directory: pathlib.Path, port: int = 0) -> Iterator[RedisServer]:
    """`port` 0: a free one; another: that one (to start a server again where it was)."""
    binary = redis_binary()
    if binary is None:
        raise RuntimeError("redis-server is not installed (scripts/test installs it)")
    directory.mkdir(parents=True, exist_ok=True)
    port = port or _free_port()
    log = (directory / "redis.log").open("wb")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(directory), "--daemonize", "no", "--protected-mode", "yes"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: {(directory / 'redis.log').read_text()[-2000:]}")
            time.sleep(0.05)
        yield RedisServer(port, proc)
    finally:
        kill_group(proc.pid, grace=5.0)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        log.close()
