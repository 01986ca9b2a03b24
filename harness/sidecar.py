"""The real sidecar as a process tree: started in its own session, ready when its ready line
arrives, and always stopped as a whole group (SIGTERM, then SIGKILL of whatever is left)."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from harness.paths import ROOT, python_env
from harness.procs import group_pids, kill_group
from reco_sidecar.gen.reco.v1 import reco_pb2_grpc
from reco_sidecar.host.readyline import wait_ready

READY_TIMEOUT = 60.0


@dataclass
class Sidecar:
    proc: subprocess.Popen[bytes]
    ready: dict[str, Any]
    stderr_path: pathlib.Path
    ready_seconds: float
    channels: list[grpc.Channel] = field(default_factory=list)

    @property
    def address(self) -> str:
        return str(self.ready["address"])

    @property
    def worker_addresses(self) -> list[str]:
        return list(self.ready["worker_addresses"])

    @property
    def pgid(self) -> int:
        return self.proc.pid

    def stub(self, address: str | None = None, **options: Any) -> reco_pb2_grpc.RecommenderStub:
        """A stub on a new channel to `address` (default: the shared one), closed at teardown."""
        channel = grpc.insecure_channel(address or self.address, options=list(options.items()))
        self.channels.append(channel)
        return reco_pb2_grpc.RecommenderStub(channel)  # type: ignore[no-untyped-call]

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def log_events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.stderr().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(line))
        return out

    def tree_pids(self) -> list[int]:
        """Pids in the sidecar's process group still alive (zombies excluded)."""
        return group_pids(self.pgid)

    def worker_pids(self) -> list[int]:
        return [p for p in self.tree_pids() if p != self.proc.pid]


def command(model_root: pathlib.Path, model: str, workers: int, extra_args: Sequence[str] = (), *,
            version: int | None = None, log_level: str | None = None) -> list[str]:
    """`reco-sidecar serve` on an ephemeral port of 127.0.0.1; `model` "": no --model (every
    model found under the root)."""
    return [sys.executable, "-m", "reco_sidecar", *(["--log-level", log_level] if log_level else []), "serve",
            "--model-root", str(model_root), *(["--model", model] if model else []),
            *(["--version", str(version)] if version else []),
            "--host", "127.0.0.1", "--port", "0", "--workers", str(workers), *extra_args]


@contextlib.contextmanager
def running_sidecar(
    model_root: pathlib.Path,
    model: str,
    *,
    workers: int = 1,
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    stdin: int | None = subprocess.DEVNULL,
    version: int | None = None,
    log_level: str | None = None,
    log_path: pathlib.Path | None = None,
    tied: bool = False,
    ready_timeout: float = READY_TIMEOUT,
    stop_grace: float = 15.0,
) -> Iterator[Sidecar]:
    """Yields a ready sidecar; on exit SIGTERMs its process group and SIGKILLs what is left after
    `stop_grace` seconds, whatever happened. Its stderr goes to `log_path` (kept) or to a
    temporary file (removed). `tied` also makes it die with this process (--parent-pid) and when
    its stdin closes, for long benchmark runs that must not leave a sidecar behind."""
    keep_log = log_path is not None
    if log_path is None:
        with tempfile.NamedTemporaryFile(prefix="sidecar-", suffix=".log", delete=False) as log:
            log_path = pathlib.Path(log.name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    args = list(extra_args)
    if tied:
        args += ["--parent-pid", str(os.getpid()), "--exit-on-stdin-eof"]
        stdin = subprocess.PIPE
    with log_path.open("wb") as err:
        started = time.monotonic()
        proc = subprocess.Popen(command(model_root, model, workers, args, version=version, log_level=log_level),
                                stdout=subprocess.PIPE, stderr=err, stdin=stdin, start_new_session=True,
                                env=python_env(**(env or {})), cwd=ROOT)
    sidecar = None
    try:
        try:
            ready = wait_ready(proc, ready_timeout)
        except (RuntimeError, TimeoutError) as e:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{e}; sidecar stderr ends with:\n{tail}") from None
        sidecar = Sidecar(proc, ready, log_path, time.monotonic() - started)
        yield sidecar
    finally:
        if sidecar is not None:
            for channel in sidecar.channels:
                channel.close()
        kill_group(proc.pid, grace=stop_grace)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if not keep_log:
            log_path.unlink(missing_ok=True)


@contextlib.contextmanager
def recommender(address: str, **options: Any) -> Iterator[reco_pb2_grpc.RecommenderStub]:
    """A Recommender stub on its own channel, closed on exit."""
    with grpc.insecure_channel(address, options=list(options.items())) as channel:
        yield reco_pb2_grpc.RecommenderStub(channel)  # type: ignore[no-untyped-call]
