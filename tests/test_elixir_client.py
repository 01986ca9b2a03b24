"""Runs the Elixir client's pure-OTP ExUnit suite (UroReco.Sidecar, UroReco.SidecarPool)
against the real sidecar, with a plain Elixir and no hex packages.

The suite boots `python -m reco_sidecar serve` through BEAM ports; the interpreter
is this one unless RECO_SIDECAR_PYTHON says otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.procs import run_bounded
from tests.support.requires import require

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "elixir_client" / "scripts" / "test_otp.sh"
SUMMARY = re.compile(r"^(\d+) tests?, (\d+) failures?", re.M)


@pytest.mark.elixir
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_otp_suite_passes_against_the_real_sidecar() -> None:
    require(shutil.which("elixir") is not None, "elixir on PATH")
    env = {**os.environ, "RECO_SIDECAR_PYTHON": os.environ.get("RECO_SIDECAR_PYTHON", sys.executable)}
    # A session of its own, so the BEAM and any sidecar it started are killed as a group.
    code, output, _, _ = run_bounded(["bash", str(SCRIPT)], 840, stderr=subprocess.STDOUT, env=env,
                                     cwd=SCRIPT.parent.parent)
    summary = SUMMARY.findall(output)
    assert summary, f"no ExUnit summary in:\n{output[-5000:]}"
    tests, failures = map(int, summary[-1])
    assert code == 0, output[-5000:]
    assert tests > 0
    assert failures == 0, output[-5000:]
