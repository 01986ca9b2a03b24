"""The CI smoke load test: loadtest/smoke.sh (small model, a few seconds of ghz per RPC type,
reloads under load) must finish with nothing but OK status codes."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess

import pytest

from harness.gotools import find as find_ghz
from harness.procs import run_bounded
from tests.support.requires import require

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_smoke_load_test_sees_only_ok_status_codes(tmp_path: pathlib.Path) -> None:
    require(find_ghz("ghz") is not None or shutil.which("go") is not None, "ghz or go")
    out = tmp_path / "out"
    code, output, _, _ = run_bounded(
        ["bash", str(ROOT / "loadtest" / "smoke.sh"), "--out-dir", str(out), "--work-dir", str(tmp_path / "work")],
        840, stderr=subprocess.STDOUT, cwd=ROOT)
    summary = json.loads((out / "summary.json").read_text())
    assert code == 0, output[-4000:]
    assert summary["failures"] == []
    runs = summary["runs"]
    assert {r["call"] for r in runs} == {"Recommend", "Similar", "BatchRecommend"}
    for r in runs:
        assert r["status_codes"] == {"OK": r["count"]} and r["count"] > 0, r
    reload = summary["reload"]
    assert reload["reloads"] >= 1 and reload["reload_failures"] == 0
    assert (out / "report.md").is_file()
