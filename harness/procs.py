"""Process groups: the one /proc scan for a group's members, killing a whole group, bounded
child runs, and waiting on a condition instead of sleeping.

Forked workers outlive a killed supervisor and keep answering on a SO_REUSEPORT port, so
everything the harness starts runs in its own session and is stopped as a group.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import resource
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import IO, Any, TypeVar

T = TypeVar("T")


def stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name (field 3, the state, is index 0); None when gone."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after its last ')'.
    return stat.rsplit(")", 1)[1].split()


def group_pids(pgid: int) -> list[int]:
    """Live (non-zombie) pids of a process group, sorted."""
    pids = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = stat_fields(int(entry.name))
        if fields is not None and int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry.name))
    return sorted(pids)


def wait_until(condition: Callable[[], T | None], timeout: float, what: str, interval: float = 0.02) -> T:
    """Polls `condition` until it returns something truthy, and returns that; raises TimeoutError
    naming `what` after `timeout` seconds. The bound only stops a broken run: nothing is asserted
    about how long the wait took."""
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= end:
            raise TimeoutError(f"not true after {timeout:g} s: {what}")
        time.sleep(interval)


def kill_group(pgid: int, *, grace: float = 5.0) -> None:
    """SIGTERM the group, then SIGKILL whatever is left of it after `grace` seconds."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    end = time.monotonic() + grace
    while time.monotonic() < end and group_pids(pgid):
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def stop(proc: subprocess.Popen[Any], *, grace: float = 5.0) -> None:
    """Kills the process group `proc` leads and reaps `proc`."""
    kill_group(proc.pid, grace=grace)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


def run_bounded(cmd: Sequence[str], timeout: float, *, stdout: int | IO[Any] | None = subprocess.PIPE,
                stderr: int | IO[Any] | None = subprocess.PIPE, env: dict[str, str] | None = None,
                cwd: pathlib.Path | None = None) -> tuple[int, str, str, float]:
    """Runs cmd in its own process group; kills the group at `timeout`, on any exception, and
    whatever of it outlives cmd. Returns (exit code, stdout, stderr, CPU seconds the child used)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(list(cmd), stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, env=env,
                            cwd=cwd, start_new_session=True, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid, grace=1.0)
        out, err = proc.communicate()
        err = (err or "") + f"\n[killed after {timeout:.0f} s]"
    finally:
        if proc.poll() is None:
            kill_group(proc.pid, grace=1.0)
            proc.wait()
        elif group_pids(proc.pid):
            # The leader is done but something it started lives on in its group.
            kill_group(proc.pid, grace=1.0)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc.returncode, out or "", err or "", cpu
