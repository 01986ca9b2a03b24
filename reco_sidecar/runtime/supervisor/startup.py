"""What the supervisor opens before its first fork, so every child inherits it: the shared
port and one private port per worker (probed, so a port in use is refused before any worker
starts), the metrics exporter, and the learner's handle (its listening socket and the online
directory's lock). A failure is logged and printed, and its exit code returned."""

from __future__ import annotations

import os
import signal
import sys

from reco_sidecar.common import logs
from reco_sidecar.common.errors import PortInUse
from reco_sidecar.common.exit_codes import ExitCode
from reco_sidecar.runtime.learner.supervised import LearnerHandle, OnlineDirBusy
from reco_sidecar.runtime.supervisor import ports
from reco_sidecar.serving import metrics
from reco_sidecar.settings import ServeSettings

log = logs.get(__name__)


def open_all(s: ServeSettings) -> tuple[int, list[int], metrics.Exporter, LearnerHandle | None] | int:
    """(shared port, private ports, exporter, learner handle or None), or an exit code."""
    try:
        port = ports.probe(s.host, s.port)
        privates = [ports.probe(s.host, 0) for _ in range(s.workers)]
        exporter = metrics.Exporter.start(s.host, s.metrics_port)
    except PortInUse as e:
        log.error("port_in_use", error=str(e))
        print(f"reco-sidecar serve: {e}", file=sys.stderr)
        return ExitCode.PORT_IN_USE
    try:
        learner = LearnerHandle(s) if s.online else None
    except (OnlineDirBusy, OSError) as e:
        exporter.close()
        log.error("online_dir_unusable", error=str(e))
        print(f"reco-sidecar serve: {e}", file=sys.stderr)
        return ExitCode.CONFIG
    return port, privates, exporter, learner


def signals_to_pipe() -> tuple[int, int]:
    """The self-pipe the loop waits on: a handler does nothing but let the kernel write the
    signal's number to it (signal.set_wakeup_fd), so nothing runs inside a handler."""
    read, write = os.pipe()
    os.set_blocking(read, False)
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)
    return read, write
