"""scripts/lib/go_build_cache.sh, the one build-and-cache helper of scripts/seaweedfs.sh and
scripts/jaeger.sh, run by a real bash with a build step that writes a small script instead of
compiling Go: the cache, `--cached-only` and a failed build behave as the scripts promise."""

from __future__ import annotations

import os
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]
HELPER = ROOT / "scripts" / "lib" / "go_build_cache.sh"


def _run(cache: pathlib.Path, tmp: pathlib.Path, *args: str, fail: bool = False) -> subprocess.CompletedProcess[str]:
    # The build step records that it ran, then writes the "binary" (or fails half-way).
    script = f"""
set -euo pipefail
. {HELPER}
build_tool() {{
  echo built >> {tmp / "builds"}
  printf '#!/bin/sh\\necho tool\\n' > "$2"
  chmod +x "$2"
  {"false" if fail else "true"}
  echo after >> {tmp / "builds"}
}}
go_build_cached tool v1.2.3 {cache} build_tool {" ".join(args)}
"""
    # The helper checks that go is on PATH before a build; this build step needs none, so a
    # stand-in answers that check on machines without Go.
    shim = tmp / "bin"
    shim.mkdir(exist_ok=True)
    (shim / "go").write_text("#!/bin/sh\nexit 0\n")
    (shim / "go").chmod(0o755)
    env = {**os.environ, "TMPDIR": str(tmp / "work"), "PATH": f"{shim}:{os.environ['PATH']}"}
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)


def _builds(tmp: pathlib.Path) -> list[str]:
    path = tmp / "builds"
    return path.read_text().split() if path.exists() else []


def test_builds_once_then_answers_from_the_cache(tmp_path: pathlib.Path) -> None:
    cache = tmp_path / "cache"
    (tmp_path / "work").mkdir()
    missing = _run(cache, tmp_path, "--cached-only")
    assert (missing.returncode, missing.stdout, _builds(tmp_path)) == (1, "", [])

    first = _run(cache, tmp_path)
    binary = cache / "tool-v1.2.3"
    assert (first.returncode, first.stdout) == (0, f"{binary}\n"), first.stderr
    assert subprocess.run([str(binary)], capture_output=True, text=True, check=True).stdout == "tool\n"
    # the build's own output went to stderr, and its temporary module is gone
    assert "building tool v1.2.3" in first.stderr and list((tmp_path / "work").iterdir()) == []

    for args in ((), ("--cached-only",)):
        again = _run(cache, tmp_path, *args)
        assert (again.returncode, again.stdout) == (0, f"{binary}\n")
    assert _builds(tmp_path) == ["built", "after"]


def test_a_failed_build_leaves_no_binary(tmp_path: pathlib.Path) -> None:
    cache = tmp_path / "cache"
    (tmp_path / "work").mkdir()
    failed = _run(cache, tmp_path, fail=True)
    assert failed.returncode != 0 and failed.stdout == ""
    assert _builds(tmp_path) == ["built"]  # stopped at the failing step
    assert list(cache.iterdir()) == [] and list((tmp_path / "work").iterdir()) == []
    assert _run(cache, tmp_path, "--cached-only").returncode == 1
