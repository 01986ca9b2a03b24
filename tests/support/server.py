"""Starts the real sidecar as a process tree and always stops the whole tree.

Forked workers outlive a killed supervisor and keep answering on a SO_REUSEPORT port,
so the sidecar runs in its own session and teardown kills the process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from reco_sidecar.gen.reco.v1 import reco_pb2_grpc
from reco_sidecar.runtime.readyline import wait_ready

READY_TIMEOUT = 60.0


@dataclass
class Sidecar:
    proc: subprocess.Popen[bytes]
    ready: dict[str, Any]
    stderr_path: pathlib.Path
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
        channel = grpc.insecure_channel(address or self.address, options=list(options.items()))
        self.channels.append(channel)
        return reco_pb2_grpc.RecommenderStub(channel)

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
        pids = []
        for entry in pathlib.Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == self.pgid and fields[0] != "Z":
                pids.append(int(entry.name))
        return pids


def command(model_root: pathlib.Path, model: str, workers: int, extra_args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "reco_sidecar", "serve", "--model-root", str(model_root), "--model", model,
            "--port", "0", "--workers", str(workers), *extra_args]


def stop_tree(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


@contextlib.contextmanager
def running_sidecar(
    model_root: pathlib.Path,
    model: str,
    *,
    workers: int = 1,
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    stdin: int | None = subprocess.DEVNULL,
) -> Iterator[Sidecar]:
    """Yields a ready sidecar; on exit SIGTERMs it, then kills whatever is left of its group."""
    with tempfile.NamedTemporaryFile(prefix="sidecar-", suffix=".log", delete=False) as log:
        stderr_path = pathlib.Path(log.name)
    with stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            command(model_root, model, workers, extra_args),
            stdout=subprocess.PIPE, stderr=err, stdin=stdin, start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    sidecar = None
    try:
        try:
            ready = wait_ready(proc, READY_TIMEOUT)
        except (RuntimeError, TimeoutError) as e:
            tail = stderr_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{e}; sidecar stderr ends with:\n{tail}") from None
        sidecar = Sidecar(proc, ready, stderr_path)
        yield sidecar
    finally:
        if sidecar is not None:
            for channel in sidecar.channels:
                channel.close()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(15)
        stop_tree(proc)
        if proc.stdout is not None:
            proc.stdout.close()
        stderr_path.unlink(missing_ok=True)
