"""The CI smoke load test: loadtest/smoke.sh (small model, a few seconds of ghz per RPC type,
reloads under load) must finish with nothing but OK status codes."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import signal
import subprocess

import pytest

from harness.gotools import find as find_ghz
from tests.support.requires import require

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_smoke_load_test_sees_only_ok_status_codes(tmp_path: pathlib.Path) -> None:
    require(find_ghz("ghz") is not None or shutil.which("go") is not None, "ghz or go")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        ["bash", str(ROOT / "loadtest" / "smoke.sh"), "--out-dir", str(out), "--work-dir", str(tmp_path / "work")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=840)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    summary = json.loads((out / "summary.json").read_text())
    assert proc.returncode == 0, output[-4000:]
    assert summary["failures"] == []
    runs = summary["runs"]
    assert {r["call"] for r in runs} == {"Recommend", "Similar", "BatchRecommend"}
    for r in runs:
        assert r["status_codes"] == {"OK": r["count"]} and r["count"] > 0, r
    reload = summary["reload"]
    assert reload["reloads"] >= 1 and reload["reload_failures"] == 0
    assert (out / "report.md").is_file()
