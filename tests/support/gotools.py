"""Go-installed command-line tools (ghz, grpcurl) for tests: the harness finds them (scripts/test
installs them at the versions the harness pins)."""

from __future__ import annotations

from harness.gotools import find


def go_tool(name: str) -> str | None:
    """The tool's path, or None when it is not installed."""
    return find(name)
