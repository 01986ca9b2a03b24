"""Where the repository is, where cached benchmark models live, and the environment that makes
a child process import this checkout's code."""

from __future__ import annotations

import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Cached benchmark models, shared by loadtest/ and bench/ (at_commit.sh points it at the work tree's).
WORK = pathlib.Path(os.environ.get("RECO_BENCH_WORK") or ROOT / "loadtest" / "results" / "work")


def python_env(**extra: str) -> dict[str, str]:
    """This environment with ROOT first on PYTHONPATH (a child runs this checkout, not an install)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env
