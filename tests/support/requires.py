"""A prerequisite a test cannot run without: skipped on a developer's machine that lacks it,
a failure in CI, whose script installs every prerequisite (a skip there would prove nothing)."""

from __future__ import annotations

import os

import pytest


def require(available: bool, what: str) -> None:
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide {what}; scripts/test installs it")
    pytest.skip(f"{what} is not available (scripts/test installs it)")
