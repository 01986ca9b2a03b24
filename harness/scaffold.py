"""The scaffold every benchmark and load test runs in: one hard time bound (SIGALRM, with
SIGTERM/SIGHUP turned into exceptions so every `finally` kills what it started), and one result
JSON written whatever happened, with the commit measured, the machine, and how busy the machine
was during the run (the machine is shared: other work moves every rate).

Logs are JSON lines on stderr; results are files.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.accounting import system_busy_seconds
from harness.paths import ROOT


def log(event: str, **fields: Any) -> None:
    line = {"t": round(time.time(), 3), "event": event, **fields}
    print(json.dumps(line, default=str), file=sys.stderr, flush=True)


def write_json(path: pathlib.Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=str) + "\n")


class TimeUp(Exception):
    """The run's hard time bound is reached."""


class Deadline:
    """One wall-clock budget for a whole run; every wait is cut to what is left of it."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def bound(self, wanted: float) -> float:
        left = self.left()
        if left <= 0:
            raise TimeUp("time limit reached")
        return min(wanted, left)


def install_signal_handlers() -> None:
    """SIGTERM/SIGHUP/SIGALRM become exceptions, so every `finally` kills what it started."""

    def raise_timeup(signum: int, _frame: object) -> None:
        raise TimeUp(f"signal {signal.Signals(signum).name}")

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(sig, raise_timeup)


def git_info() -> dict[str, Any]:
    """The commit measured. Under loadtest/at_commit.sh (a clean export of one commit) it comes
    from RECO_BENCH_COMMIT; in a work tree, uncommitted or untracked files under reco_sidecar/
    (which the sidecar would run) are listed."""
    if os.environ.get("RECO_BENCH_COMMIT"):
        return {"commit": os.environ["RECO_BENCH_COMMIT"], "subject": os.environ.get("RECO_BENCH_SUBJECT", ""),
                "source": "clean export (git archive)", "serving_code_dirty": False, "dirty_files": []}

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    dirty = git("status", "--porcelain", "--", "reco_sidecar")
    return {"commit": git("rev-parse", "HEAD"), "subject": git("log", "-1", "--format=%s"), "source": "work tree",
            "serving_code_dirty": bool(dirty), "dirty_files": dirty.splitlines()[:20]}


def loadavg() -> list[str]:
    return pathlib.Path("/proc/loadavg").read_text().split()[:3]


def machine_info() -> dict[str, Any]:
    mem_kib = 0
    with contextlib.suppress(OSError):
        for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {"cpus": os.cpu_count(), "mem_gib": round(mem_kib / 2**20, 1), "python": platform.python_version(),
            "kernel": platform.release(), "loadavg": loadavg()}


@dataclass
class Run:
    """A run in progress: its result record (written as JSON at the end), its deadline, and
    hooks that complete the record before it is written (each may fail without losing it)."""

    record: dict[str, Any]
    deadline: Deadline
    before_write: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        failures: list[str] = self.record["failures"]
        return failures


@contextlib.contextmanager
def bounded_run(out: pathlib.Path, *, time_limit: float, margin: float, command: Sequence[str],
                **fields: Any) -> Iterator[Run]:
    """Runs the body under a hard bound of `time_limit` seconds (its Deadline ends `margin`
    seconds earlier, left for cleanup) and writes the record to `out` at the end, even when the
    body failed: the failure is then in record["failures"] and is not raised again (except
    KeyboardInterrupt and the like)."""
    install_signal_handlers()
    signal.alarm(int(time_limit))
    busy0, total0 = system_busy_seconds()
    run = Run(record={**fields, "started": time.time(), "git": git_info(), "machine": machine_info(),
                      "command": " ".join(command), "failures": []},
              deadline=Deadline(time_limit - margin))
    try:
        yield run
    except BaseException as e:
        run.failures.append(f"{type(e).__name__}: {e}")
        log("run_failed", out=str(out), error=f"{type(e).__name__}: {e}")
        if not isinstance(e, Exception):
            raise
    finally:
        signal.alarm(0)
        run.record["finished"] = time.time()
        busy1, total1 = system_busy_seconds()
        cores = os.cpu_count() or 1
        # Cores busy on average over the run, everything on the machine included.
        run.record["machine"]["cores_busy_during_run"] = (
            round((busy1 - busy0) / (total1 - total0) * cores, 2) if total1 > total0 else None)
        run.record["machine"]["loadavg_at_end"] = loadavg()
        for hook in run.before_write:
            try:
                hook(run.record)
            except Exception as e:  # a broken summary must not lose the measurements
                run.failures.append(f"{getattr(hook, '__name__', 'hook')}: {type(e).__name__}: {e}")
        with contextlib.suppress(OSError):
            write_json(out, run.record)
        log("run_done", out=str(out), failures=run.failures)
