"""Go-installed command-line tools (ghz, grpcurl) that scripts/test installs into GOPATH/bin."""

from __future__ import annotations

import pathlib
import shutil
import subprocess


def go_tool(name: str) -> str | None:
    """The tool on PATH, else in `go env GOPATH`/bin, else None."""
    found = shutil.which(name)
    if found:
        return found
    if not shutil.which("go"):
        return None
    gopath = subprocess.run(["go", "env", "GOPATH"], capture_output=True, text=True, timeout=60).stdout.strip()
    candidate = pathlib.Path(gopath) / "bin" / name if gopath else None
    return str(candidate) if candidate is not None and candidate.exists() else None
