"""Reloads under load: a steady ghz run, then the same run with Reload every few seconds
alternating versions 1 and 2, with the tree's memory sampled from /proc."""

from __future__ import annotations

import argparse
import pathlib
import threading
import time
from collections.abc import Callable
from typing import Any

from harness.accounting import MemorySampler
from harness.bench_model import BenchModel
from harness.ghz_run import GhzRun
from harness.scaffold import Deadline, log
from harness.sidecar import Sidecar, recommender

GhzRunner = Callable[[GhzRun, str], dict[str, Any]]


def reload_storm(sc: Sidecar, model: BenchModel, args: argparse.Namespace, rate: int,
                 deadline: Deadline, ghz_run: GhzRunner, data_file: pathlib.Path, connections: int) -> dict[str, Any]:
    """A steady run, then the same run with Reload every few seconds alternating 1 <-> 2."""
    model.publish_copy(2)
    runs = {}
    for phase in ("steady", "reloading"):
        run = GhzRun(f"Recommend-reload-{phase}-rps{rate}", call="Recommend", data_file=data_file,
                     rps=rate, concurrency=args.step_concurrency, connections=connections,
                     duration_s=args.reload_seconds)
        reloads: list[dict[str, Any]] = []
        stop = threading.Event()
        thread = None
        if phase == "reloading":
            thread = threading.Thread(target=_reloader, args=(sc.address, args.reload_every, stop, reloads),
                                      daemon=True)
        with MemorySampler(sc.pgid, interval=0.2) as mem:
            if thread:
                thread.start()
            try:
                result = ghz_run(run, f"reload_{phase}")
            finally:
                stop.set()
                if thread:
                    thread.join(120)
        result["memory"] = mem.summary()
        if phase == "reloading":
            result["reloads"] = reloads
        runs[phase] = result
    steady, storm = runs["steady"], runs["reloading"]
    reload_errors = [r for r in storm["reloads"] if not r.get("ok")]
    p99_ratio = (storm["latency_ms"]["p99"] / steady["latency_ms"]["p99"]) if steady["latency_ms"]["p99"] else None
    return {
        "rate": rate, "seconds": args.reload_seconds, "every_s": args.reload_every,
        "reloads": len(storm["reloads"]), "reload_failures": len(reload_errors),
        "load_seconds": [r.get("load_seconds") for r in storm["reloads"] if r.get("ok")],
        "reload_rpc_seconds": [r["rpc_s"] for r in storm["reloads"]],
        "steady": {"p99_ms": steady["latency_ms"]["p99"], "p50_ms": steady["latency_ms"]["p50"],
                   "errors": steady["errors"], "rps": steady["rps"], "memory": steady["memory"]},
        "reloading": {"p99_ms": storm["latency_ms"]["p99"], "p50_ms": storm["latency_ms"]["p50"],
                      "errors": storm["errors"], "rps": storm["rps"], "memory": storm["memory"]},
        "p99_ratio": round(p99_ratio, 3) if p99_ratio else None,
        "peak_pss_ratio": _ratio(storm["memory"].get("pss_mib_peak"), steady["memory"].get("pss_mib_peak")),
        "peak_rss_ratio": _ratio(storm["memory"].get("rss_mib_peak"), steady["memory"].get("rss_mib_peak")),
        "version_bytes_on_disk": model.bytes_on_disk(),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def _reloader(address: str, every: float, stop: threading.Event, out: list[dict[str, Any]]) -> None:
    from reco_sidecar.gen.reco.v1 import reco_pb2

    t0 = time.monotonic()
    version = 2
    with recommender(address) as s:
        stop.wait(min(every, 2.0))
        while not stop.is_set():
            started = time.monotonic()
            entry: dict[str, Any] = {"at_s": round(started - t0, 2), "version": version}
            try:
                r = s.Reload(reco_pb2.ReloadRequest(version=str(version)), timeout=120)
                entry.update(ok=True, old=r.old_version, new=r.new_version, load_seconds=round(r.load_seconds, 3),
                             workers=r.workers)
            except Exception as e:  # any failure is a result to report
                entry.update(ok=False, error=str(e)[:300])
            entry["rpc_s"] = round(time.monotonic() - started, 3)
            out.append(entry)
            log("reload", **entry)
            version = 1 if version == 2 else 2
            stop.wait(max(0.0, every - (time.monotonic() - started)))
