"""For a Python host that starts `serve` itself: read its one JSON ready line from stdout,
with a deadline, noticing a sidecar that exits first."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import time
from typing import Any


def wait_ready(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    if proc.stdout is None:
        raise ValueError("start the sidecar with stdout=subprocess.PIPE")
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline:
        if not sel.select(timeout=0.05):
            if proc.poll() is not None:
                raise RuntimeError(f"sidecar exited with {proc.returncode} before ready")
            continue
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            raise RuntimeError(f"sidecar closed stdout before ready (exit {proc.wait(5)})")
        buf += chunk
        if b"\n" in buf:
            ready: dict[str, Any] = json.loads(buf.split(b"\n", 1)[0])
            return ready
    raise TimeoutError(f"sidecar not ready within {timeout:.0f} s")
