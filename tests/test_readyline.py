from __future__ import annotations

import subprocess
import sys

import pytest

from reco_sidecar.host.readyline import wait_ready


def _spawn(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)


def test_the_first_line_is_the_ready_document() -> None:
    proc = _spawn('print(\'{"event": "ready", "port": 5}\', flush=True); print("later")')
    assert wait_ready(proc, 30) == {"event": "ready", "port": 5}
    proc.wait(10)


def test_a_sidecar_that_exits_before_ready_is_reported() -> None:
    proc = _spawn("import sys; sys.stdout.close(); sys.exit(4)")
    with pytest.raises(RuntimeError, match="before ready"):
        wait_ready(proc, 30)


def test_silence_past_the_deadline_is_a_timeout() -> None:
    proc = _spawn("import time; time.sleep(30)")
    try:
        with pytest.raises(TimeoutError):
            wait_ready(proc, 0.3)
    finally:
        proc.kill()
        proc.wait(10)
