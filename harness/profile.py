"""py-spy recordings of a sidecar worker and what they say: self and inclusive time per function."""

from __future__ import annotations

import contextlib
import pathlib
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

from harness.procs import kill_group, run_bounded, wait_until
from harness.scaffold import log


def find_py_spy() -> str | None:
    """py-spy on PATH, else installed from PyPI; None when that fails."""
    found = shutil.which("py-spy")
    if found:
        return found
    code, _, err, _ = run_bounded([sys.executable, "-m", "pip", "install", "--quiet", "py-spy"], 300)
    if code != 0:
        log("py_spy_unavailable", error=err[-500:])
        return None
    return shutil.which("py-spy") or str(pathlib.Path(sys.executable).parent / "py-spy")


@contextlib.contextmanager
def recording(pid: int | None, out: pathlib.Path, seconds: float, *,
              enabled: bool = True) -> Iterator[dict[str, Any] | None]:
    """py-spy record (raw collapsed stacks, all threads) of `pid` while the body runs, plus one
    `py-spy dump` half-way. Yields the dict that receives the summary after the body (None when
    disabled or py-spy is unavailable)."""
    spy = find_py_spy() if enabled and pid else None
    if spy is None or pid is None:
        yield None
        return
    result: dict[str, Any] = {}
    raw = out / "profile-recommend-worker.txt"
    dump_path = out / "profile-recommend-worker-dump.txt"
    duration = max(2, int(seconds) - 2)
    cmd = [spy, "record", "--pid", str(pid), "--duration", str(duration), "--rate", "200",
           "--format", "raw", "--output", str(raw), "--nonblocking", "--threads"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    dump = threading.Timer(seconds / 2, _dump_stacks, args=(spy, pid, dump_path))
    try:
        # py-spy attaches within a fraction of a second; give it that before the load starts.
        with contextlib.suppress(TimeoutError, subprocess.TimeoutExpired):
            wait_until(lambda: proc.poll() is not None, 0.5, "py-spy attached")
        dump.start()
        yield result
    finally:
        dump.cancel()
        try:
            proc.wait(timeout=duration + 20)
        except subprocess.TimeoutExpired:
            pass
        finally:
            if proc.poll() is None:
                kill_group(proc.pid, grace=1.0)
    if raw.is_file():
        result.update(summarize(raw))
        result["pid"] = pid
        result["raw"] = raw.name
        result["dump"] = dump_path.name
    else:
        result["error"] = (proc.stderr.read().decode(errors="replace") if proc.stderr else "")[-500:]


def _dump_stacks(spy: str, pid: int, path: pathlib.Path) -> None:
    """`py-spy dump` of every thread of a worker at one instant, mid-run."""
    code, out, err, _ = run_bounded([spy, "dump", "--pid", str(pid), "--nonblocking"], 30)
    path.write_text(out if code == 0 else f"py-spy dump failed ({code}): {err}")


def _frame(f: str) -> str:
    """'func (path/file.py:123)' -> 'func (file.py)'; thread and process frames stay as they are."""
    name, sep, where = f.rpartition(" (")
    if not sep or ".py" not in where:
        return f
    return f"{name} ({where.split(':')[0].rsplit('/', 1)[-1].rstrip(')')})"


def summarize(raw: pathlib.Path, top: int = 20) -> dict[str, Any]:
    """Self time per function, and inclusive time of the frames that tell where a request goes."""
    self_counts: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    by_thread: dict[str, int] = {}
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame(f) for f in stack.split(";")]
        by_thread[frames[0]] = by_thread.get(frames[0], 0) + count
        self_counts[frames[-1]] = self_counts.get(frames[-1], 0) + count
        for f in set(frames):
            inclusive[f] = inclusive.get(f, 0) + count

    def share(d: dict[str, int]) -> list[list[Any]]:
        return [[k, round(v / total, 3)] for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]] if total else []

    return {"samples": total, "self": share(self_counts), "inclusive": share(inclusive),
            "threads": share(by_thread)}
