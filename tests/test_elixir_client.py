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


CLIENT = ROOT / "elixir_client"


def test_elixir_requirement_is_the_one_the_readme_states() -> None:
    """grpc 1.0 needs Elixir 1.18 (through googleapis 0.1): mix.exs and the README say the same."""
    mix = (CLIENT / "mix.exs").read_text()
    readme = (CLIENT / "README.md").read_text()
    requirement = re.search(r'^\s*elixir: "~> (\d+\.\d+)"', mix, re.M)
    assert requirement, "no elixir requirement in mix.exs"
    assert requirement.group(1) == "1.18"
    assert re.search(r'\{:grpc, "~> 1\.0"\}', mix)
    assert f"**Elixir {requirement.group(1)} or later**" in readme
    assert re.search(r"\*\*Verified against\*\* \(\d{4}-\d{2}-\d{2}\): Elixir 1\.18\.\d+", readme)


def test_formatter_imports_the_dsls_of_grpc_core_and_oban() -> None:
    """In grpc 1.0 `rpc/3` comes from :grpc_core; `assert_enqueued` from :oban (CI cannot run mix format)."""
    formatter = (CLIENT / ".formatter.exs").read_text()
    deps = re.search(r"import_deps: \[([^\]]*)\]", formatter)
    assert deps, "no import_deps in .formatter.exs"
    imported = {name.strip() for name in deps.group(1).split(",")}
    assert {":grpc_core", ":oban", ":protobuf", ":ecto", ":ecto_sql"} <= imported
    assert ":grpc" not in imported


ENV_READ = re.compile(r"\bApplication\s*\.\s*(?:get_env|fetch_env!?|get_all_env|compile_env!?)\b|\bConfig\.Reader\b")


def test_the_library_reads_no_application_env() -> None:
    """Settings come from the host as options (UroReco.Options, UroReco.Jobs), never from app env.

    A library reading app env has one configuration per node, hidden from the caller; the jobs'
    settings are registered per instance instead.
    """
    sources = sorted((CLIENT / "lib").rglob("*.ex"))
    assert len(sources) > 20, "the client's sources moved"
    reads = [f"{path.relative_to(CLIENT)}:{number}: {line.strip()}"
             for path in sources
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if ENV_READ.search(line) and not line.lstrip().startswith("#")]
    assert reads == [], "application env read inside the library:\n" + "\n".join(reads)


def test_migrations_use_no_arrays_of_jsonb() -> None:
    """CockroachDB has JSONB but no JSONB[]: a map-valued column is one JSONB value."""
    migrations = sorted((CLIENT / "priv" / "repo" / "migrations").glob("*.exs"))
    columns = [(path.name, line.strip()) for path in migrations for line in path.read_text().splitlines()
               if re.match(r"\s*(add|modify) :\w+,", line)]
    assert any("reasons" in line and ":jsonb" in line for _, line in columns), columns
    arrays_of_maps = [(name, line) for name, line in columns
                      if re.search(r"\{:array, *(:map|:jsonb|\{:map)", line)]
    assert arrays_of_maps == []
