"""What every benchmark under bench/ shares: arguments, the cached benchmark model (the one
loadtest/ builds), and the run scaffold (hard time bound, result JSON with commit and machine
load), both from the harness."""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Callable
from typing import Any

from harness.bench_model import SMOKE_SPEC, BenchModel, ModelSpec, ensure_model
from harness.paths import ROOT, WORK
from harness.scaffold import Deadline, bounded_run

RESULTS = ROOT / "bench" / "results"


def parser(doc: str | None, time_limit: float) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work-dir", type=pathlib.Path, default=WORK,
                   help="where the benchmark model is cached (shared with loadtest/)")
    p.add_argument("--small", action="store_true", help="use the small smoke model (to try the script)")
    p.add_argument("--out", type=pathlib.Path, help="result JSON (default bench/results/<name>.json)")
    p.add_argument("--time-limit", type=float, default=time_limit, help="hard bound, seconds")
    return p


def run(name: str, args: argparse.Namespace, body: Callable[[BenchModel, Deadline, dict[str, Any]], None]) -> int:
    """Runs body(model, deadline, result) under the time bound and writes the result JSON, even
    when the body fails (with the failure in it)."""
    out = args.out or RESULTS / f"{name}.json"
    command = ["python", "-m", f"bench.{name}", *sys.argv[1:]]
    with bounded_run(out, time_limit=args.time_limit, margin=15, command=command, benchmark=name) as r:
        spec = SMOKE_SPEC if args.small else ModelSpec()
        model = ensure_model(args.work_dir, spec, r.deadline)
        r.record["model"] = model.describe()
        body(model, r.deadline, r.record)
    return 2 if r.failures else 0
