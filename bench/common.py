"""What every benchmark under bench/ shares: arguments, the cached benchmark model (the one
loadtest/ builds), the results file, and the hard time bound."""

from __future__ import annotations

import argparse
import contextlib
import pathlib
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from loadtest import lib

RESULTS = lib.ROOT / "bench" / "results"


def parser(doc: str | None, time_limit: float) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work-dir", type=pathlib.Path, default=lib.WORK,
                   help="where the benchmark model is cached (shared with loadtest/)")
    p.add_argument("--small", action="store_true", help="use the small smoke model (to try the script)")
    p.add_argument("--out", type=pathlib.Path, help="result JSON (default bench/results/<name>.json)")
    p.add_argument("--time-limit", type=float, default=time_limit, help="hard bound, seconds")
    return p


def run(name: str, args: argparse.Namespace, body: Callable[[lib.BenchModel, lib.Deadline, dict[str, Any]], None]
        ) -> int:
    """Runs body(model, deadline, result) under the time bound and writes the result JSON, even
    when the body fails (with the failure in it)."""
    lib.install_signal_handlers()
    signal.alarm(int(args.time_limit))
    deadline = lib.Deadline(args.time_limit - 15)
    out = args.out or RESULTS / f"{name}.json"
    result: dict[str, Any] = {"benchmark": name, "started": time.time(), "git": lib.git_info(),
                              "machine": lib.machine_info(),
                              "command": " ".join(["python", "-m", f"bench.{name}", *sys.argv[1:]]),
                              "failures": []}
    code = 0
    try:
        spec = lib.SMOKE_SPEC if args.small else lib.ModelSpec()
        model = lib.ensure_model(args.work_dir, spec, deadline)
        result["model"] = {"spec": spec.__dict__, "version_dir": str(model.version_dir),
                           "bytes_on_disk": model.bytes_on_disk()}
        body(model, deadline, result)
    except BaseException as e:
        result["failures"].append(f"{type(e).__name__}: {e}")
        lib.log("benchmark_failed", benchmark=name, error=f"{type(e).__name__}: {e}")
        code = 2
        if not isinstance(e, Exception):
            raise
    finally:
        signal.alarm(0)
        result["finished"] = time.time()
        with contextlib.suppress(Exception):
            lib.write_json(out, result)
        lib.log("benchmark_done", benchmark=name, out=str(out))
    return code
