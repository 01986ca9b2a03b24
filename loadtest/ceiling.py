"""The in-process ceiling: the sidecar's own scoring called in a loop in one process with one
BLAS thread, no gRPC, no ids, no protos. Multiplied by the number of workers it is what the
sidecar could serve if serving cost nothing.

    python -m loadtest.ceiling --version-dir DIR --seconds 4 --workers 2 --out ceiling.json
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time
from typing import Any

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402


def _rate(fn, seconds: float) -> tuple[float, int, float]:  # type: ignore[no-untyped-def]
    """Calls fn() repeatedly for `seconds` (after a short warm-up); (calls per wall second, calls,
    CPU milliseconds per call). On a machine shared with other work the CPU cost is the steadier
    number: calls per wall second fall with the share of a core this process gets."""
    end = time.perf_counter() + min(0.5, seconds / 4)
    while time.perf_counter() < end:
        fn()
    calls = 0
    started = time.perf_counter()
    cpu0 = time.process_time()
    end = started + seconds
    while True:
        fn()
        calls += 1
        now = time.perf_counter()
        if now >= end:
            return calls / (now - started), calls, (time.process_time() - cpu0) * 1e3 / calls


def measure(version_dir: pathlib.Path, seconds: float, workers: int, batch_users: int, n: int = 10) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    from reco_sidecar.artifact import loader
    from reco_sidecar.engine.query import RecQuery, Restriction

    threadpool_limits(1)
    model = loader.open_model(version_dir)
    rng = np.random.default_rng(3)
    users = rng.integers(0, len(model.users), 100_000).tolist()
    items = rng.integers(0, len(model.items), 100_000).tolist()
    none = Restriction.none()
    state = {"u": 0, "i": 0}

    def one_recommend() -> None:
        state["u"] = (state["u"] + 1) % len(users)
        model.recommend([RecQuery(0, n, none, user_row=users[state["u"]])])

    def one_similar() -> None:
        state["i"] = (state["i"] + 1) % len(items)
        model.similar(items[state["i"]], 0, n, none)

    def batch(size: int):  # type: ignore[no-untyped-def]
        def run() -> None:
            s = state["u"]
            state["u"] = (s + size) % (len(users) - size)
            model.recommend([RecQuery(0, n, none, user_row=r) for r in users[s : s + size]])
        return run

    out: dict[str, Any] = {"version_dir": str(version_dir), "workers": workers, "n": n, "seconds_each": seconds,
                 "blas_threads": 1, "users": len(model.users), "items": len(model.items), "factors": model.factors}
    rate, calls, cpu_ms = _rate(one_recommend, seconds)
    out["recommend"] = {"per_process_rps": round(rate, 1), "calls": calls, "cpu_ms_per_call": round(cpu_ms, 3),
                        "cpu_ceiling_rps": round(workers * 1e3 / cpu_ms, 1),
                        "ceiling_rps": round(rate * workers, 1),
                        "what": "model.recommend([one query]) per call"}
    rate, calls, cpu_ms = _rate(one_similar, seconds)
    out["similar"] = {"per_process_rps": round(rate, 1), "calls": calls, "ceiling_rps": round(rate * workers, 1),
                      "cpu_ms_per_call": round(cpu_ms, 3), "cpu_ceiling_rps": round(workers * 1e3 / cpu_ms, 1),
                      "what": "model.similar(row, 0, n) per call"}
    for size, key in ((batch_users, "batch_recommend"), (64, "recommend_batched_64")):
        rate, calls, cpu_ms = _rate(batch(size), seconds)
        out[key] = {"batch_users": size, "per_process_calls_per_s": round(rate, 1), "calls": calls,
                    "cpu_ms_per_call": round(cpu_ms, 3), "cpu_ceiling_calls_per_s": round(workers * 1e3 / cpu_ms, 1),
                    "per_process_users_per_s": round(rate * size, 1),
                    "ceiling_calls_per_s": round(rate * workers, 1),
                    "ceiling_users_per_s": round(rate * size * workers, 1),
                    "what": f"model.recommend([{size} queries]) per call"}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version-dir", type=pathlib.Path, required=True)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-users", type=int, default=10)
    p.add_argument("--out", type=pathlib.Path)
    args = p.parse_args(argv)
    result = measure(args.version_dir, args.seconds, args.workers, args.batch_users)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    print(json.dumps({"event": "ceiling", "recommend_rps": result["recommend"]["ceiling_rps"],
                      "similar_rps": result["similar"]["ceiling_rps"]}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
