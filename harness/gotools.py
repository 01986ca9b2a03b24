"""Go-installed command-line tools (ghz, grpcurl): found, or installed at their pinned version
with `go install`. The only place the versions are written: scripts/test, loadtest/, bench/
and the tests all ask this module.

    python -m harness.gotools ghz              # prints its path, installing it when go is there; exit 1 if neither
    python -m harness.gotools grpcurl --no-install
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys

from harness.procs import run_bounded

PINNED = {
    "ghz": "github.com/bojand/ghz/cmd/ghz@v0.121.0",
    "grpcurl": "github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3",
}


def _executable(path: pathlib.Path | str | None) -> str | None:
    return str(path) if path and os.path.isfile(path) and os.access(path, os.X_OK) else None


def _go_bin() -> pathlib.Path:
    """Where `go install` puts binaries: $GOBIN, else the first $(go env GOPATH)/bin, else ~/go/bin."""
    go = shutil.which("go")
    if go is not None:
        try:
            env = subprocess.run([go, "env", "GOBIN", "GOPATH"], capture_output=True, text=True, timeout=60).stdout
        except (OSError, subprocess.TimeoutExpired):
            env = ""
        lines = [*env.splitlines(), "", ""]
        if lines[0].strip():
            return pathlib.Path(lines[0].strip())
        if lines[1].strip():
            return pathlib.Path(lines[1].strip().split(os.pathsep)[0]) / "bin"
    return pathlib.Path.home() / "go" / "bin"


def find(name: str, install: bool = False, timeout: float = 600.0) -> str | None:
    """$NAME (e.g. $GHZ), `name` on PATH, or in go's bin directory; else, with `install`, `go
    install` of the pinned version when go is there. None when neither found nor installable."""
    found = (_executable(os.environ.get(name.upper())) or shutil.which(name)
             or _executable(_go_bin() / name))
    if found or not install:
        return found
    go = shutil.which("go")
    if go is None:
        return None
    print(f"harness.gotools: go install {PINNED[name]}", file=sys.stderr, flush=True)
    code, _, err, _ = run_bounded([go, "install", PINNED[name]], timeout)
    if code != 0:
        raise RuntimeError(f"go install {PINNED[name]} failed: {err[-2000:]}")
    return _executable(_go_bin() / name)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tool", choices=sorted(PINNED))
    p.add_argument("--no-install", action="store_true", help="only look for it")
    args = p.parse_args(argv)
    path = find(args.tool, install=not args.no_install)
    if path is None:
        print(f"harness.gotools: {args.tool} not found and go is not there to install {PINNED[args.tool]}",
              file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
