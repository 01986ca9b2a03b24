"""The real sidecar as a process tree for tests: the harness's, under the names tests use."""

from __future__ import annotations

from harness.procs import stop
from harness.sidecar import Sidecar, command, running_sidecar

# A test that starts a process itself stops its whole group with this.
stop_tree = stop

__all__ = ["Sidecar", "command", "running_sidecar", "stop_tree"]
