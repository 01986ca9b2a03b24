"""ghz runs against the sidecar, each with a hard time bound, summarized from ghz's JSON
(latency percentiles computed from every request's `details`, errors included)."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from harness.paths import ROOT
from harness.procs import run_bounded
from harness.scaffold import Deadline, log
from reco_sidecar.gen.reco.v1 import reco_pb2

SERVICE = reco_pb2.DESCRIPTOR.services_by_name["Recommender"].full_name


def protoset(out_dir: pathlib.Path) -> pathlib.Path:
    """A descriptor set of protos/reco/v1/reco.proto (the fallback when reflection cannot be used)."""
    out = out_dir / "reco.protoset"
    code, _, err, _ = run_bounded(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'protos'}", "--include_imports",
         f"--descriptor_set_out={out}", str(ROOT / "protos" / "reco" / "v1" / "reco.proto")], 120)
    if code != 0:
        raise RuntimeError(f"protoc failed: {err[-2000:]}")
    return out


def descriptor_source(ghz: str, target: str, work: pathlib.Path) -> tuple[list[str], dict[str, Any]]:
    """ghz's descriptor flags: none (server reflection) when the server answers ghz's lookup of a
    method symbol; otherwise a protoset compiled from the repository's proto, with the reason."""
    code, out, err, _ = run_bounded(
        [ghz, "--insecure", "--call", f"{SERVICE}.GetModelStatus", "-d", "{}", "-n", "1", "-c", "1",
         "-O", "json", target], 60)
    if code == 0 and '"OK"' in out:
        return [], {"descriptors": "server reflection"}
    reason = (err.strip() or out.strip())[-300:]
    path = protoset(work)
    log("ghz_reflection_unusable", reason=reason, fallback=str(path))
    return ["--protoset", str(path)], {"descriptors": "protoset (fallback)", "reflection_error": reason}


@dataclass(frozen=True)
class GhzRun:
    label: str
    call: str
    data_file: pathlib.Path
    rps: int = 0  # 0: unthrottled
    concurrency: int = 50
    connections: int = 8
    duration_s: float = 12.0
    call_timeout_s: float = 10.0
    # Status codes that the data make expected (e.g. NOT_FOUND for unknown item ids in Similar).
    expected_codes: tuple[str, ...] = ()
    # Closed-loop callers spread evenly over every worker's own address (run_ghz_spread), as a
    # client spreads its calls: on a shared SO_REUSEPORT port the kernel places connections by
    # a hash, so 4 connections land all on one of 2 workers 1 time in 8 and 3 to 1 half the
    # time, and a few callers measure the placement more than the server.
    spread: bool = False


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q / 100.0 * len(sorted_values) + 0.5) - 1))
    return sorted_values[i]


def summarize(report: dict[str, Any], run: GhzRun) -> dict[str, Any]:
    details = report.get("details") or []
    lat_ms = sorted(d["latency"] / 1e6 for d in details)
    codes: dict[str, int] = dict(report.get("statusCodeDistribution") or {})
    count = int(report.get("count", 0))
    ok = codes.get("OK", 0)
    expected = sum(codes.get(c, 0) for c in run.expected_codes)
    return {
        "label": run.label, "call": run.call, "target_rps": run.rps, "concurrency": run.concurrency,
        "connections": run.connections, "duration_s": run.duration_s,
        "count": count, "rps": round(float(report.get("rps", 0.0)), 1),
        "ok": ok, "expected_non_ok": expected, "errors": count - ok - expected,
        "status_codes": codes, "error_distribution": report.get("errorDistribution") or {},
        "end_reason": report.get("endReason"),
        "latency_ms": {
            "mean": round(sum(lat_ms) / len(lat_ms), 3) if lat_ms else None,
            **{f"p{q:g}": round(percentile(lat_ms, q), 3) for q in (50, 90, 95, 99, 99.9)},
            "max": round(lat_ms[-1], 3) if lat_ms else None,
        },
    }


def run_ghz(ghz: str, descriptor_flags: Sequence[str], target: str, run: GhzRun, out_json: pathlib.Path,
            deadline: Deadline) -> dict[str, Any]:
    """One ghz run, bounded by duration + call timeout + 30 s (and what is left of `deadline`)."""
    # ghz refuses more connections than concurrent workers.
    run = dataclasses.replace(run, connections=min(run.connections, run.concurrency))
    code, cpu = _ghz(ghz, descriptor_flags, target, run, out_json, deadline)
    return _summary(json.loads(out_json.read_text()), run, code, cpu)


def run_ghz_spread(ghz: str, descriptor_flags: Sequence[str], targets: Sequence[str], run: GhzRun,
                   out_json: pathlib.Path, deadline: Deadline) -> dict[str, Any]:
    """`run` split evenly over `targets` (each worker's own address): one ghz per target, all at
    once, each with its share of the callers and connections; their reports are merged (every
    request's latency, counts and codes summed) into one summary of the whole run. With fewer
    callers than targets, the first targets get one each. Closed loop only: an offered rate
    would be offered once per target."""
    if run.rps:
        raise ValueError("a spread run is closed-loop (rps 0)")
    share = [run.concurrency // len(targets) + (i < run.concurrency % len(targets)) for i in range(len(targets))]
    parts = [(t, dataclasses.replace(run, concurrency=c, connections=max(1, min(c, run.connections // len(targets)))))
             for t, c in zip(targets, share, strict=True) if c]
    outs = [out_json.with_name(f"{out_json.stem}.{i}{out_json.suffix}") for i in range(len(parts))]
    with ThreadPoolExecutor(len(parts)) as pool:
        done = list(pool.map(lambda a: _ghz(ghz, descriptor_flags, a[0][0], a[0][1], a[1], deadline),
                             zip(parts, outs, strict=True)))
    reports = [json.loads(o.read_text()) for o in outs]
    merged = {
        "details": [d for r in reports for d in (r.get("details") or [])],
        "count": sum(int(r.get("count", 0)) for r in reports),
        "rps": sum(float(r.get("rps", 0.0)) for r in reports),
        "statusCodeDistribution": _summed(r.get("statusCodeDistribution") for r in reports),
        "errorDistribution": _summed(r.get("errorDistribution") for r in reports),
        "endReason": reports[0].get("endReason"),
    }
    out_json.write_text(json.dumps(merged))
    summary = _summary(merged, run, max(code for code, _ in done), sum(cpu for _, cpu in done))
    summary["targets"] = [t for t, _ in parts]
    return summary


def _summed(maps: Iterable[dict[str, int] | None]) -> dict[str, int]:
    total: dict[str, int] = {}
    for m in maps:
        for k, v in (m or {}).items():
            total[k] = total.get(k, 0) + int(v)
    return total


def _summary(report: dict[str, Any], run: GhzRun, code: int, cpu: float) -> dict[str, Any]:
    summary = summarize(report, run)
    summary["ghz_exit"] = code
    summary["client_cpu_s"] = round(cpu, 2)
    log("ghz_done", label=run.label, rps=summary["rps"], p99_ms=summary["latency_ms"]["p99"],
        errors=summary["errors"], codes=summary["status_codes"])
    return summary


def _ghz(ghz: str, descriptor_flags: Sequence[str], target: str, run: GhzRun, out_json: pathlib.Path,
         deadline: Deadline) -> tuple[int, float]:
    """Runs ghz once; (exit code, its CPU seconds). Raises when it wrote no report."""
    cmd = [ghz, "--insecure", *descriptor_flags, "--call", f"{SERVICE}.{run.call}", "-D", str(run.data_file),
           "--connections", str(run.connections), "-c", str(run.concurrency), "-z", f"{run.duration_s:g}s",
           "--duration-stop", "wait", "-t", f"{run.call_timeout_s:g}s", "-O", "json", "-o", str(out_json)]
    if run.rps:
        cmd += ["--rps", str(run.rps)]
    cmd.append(target)
    limit = deadline.bound(run.duration_s + run.call_timeout_s + 30)
    log("ghz_start", label=run.label, call=run.call, rps=run.rps, concurrency=run.concurrency,
        connections=run.connections, duration_s=run.duration_s)
    code, _, err, cpu = run_bounded(cmd, limit)
    if not out_json.is_file() or out_json.stat().st_size == 0:
        raise RuntimeError(f"ghz wrote no report for {run.label} (exit {code}): {err[-1500:]}")
    return code, cpu
