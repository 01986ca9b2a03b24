"""The real sidecar for tests, under the names tests use: a process tree (for what needs
processes), or a worker's server inside the test process (for what one worker does)."""

from __future__ import annotations

from harness.inprocess import InProcess, in_process_sidecar
from harness.procs import stop
from harness.sidecar import Sidecar, command, running_sidecar

# A test that starts a process itself stops its whole group with this.
stop_tree = stop

__all__ = ["InProcess", "Sidecar", "command", "in_process_sidecar", "running_sidecar", "stop_tree"]
