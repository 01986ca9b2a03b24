"""Shared machinery for the load tests and the benchmarks.

ghz (found or installed), the cached benchmark model, the sidecar as a process tree that is
always killed as a group, ghz runs with a hard time bound, and /proc accounting of memory
(PSS and RSS over the process tree) and CPU time. Logs go to stderr; results are files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import random
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from reco_sidecar.runtime.readyline import wait_ready

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Cached benchmark models (shared by loadtest/ and bench/; at_commit.sh points it at the work tree's).
WORK = pathlib.Path(os.environ.get("RECO_BENCH_WORK") or ROOT / "loadtest" / "results" / "work")
GHZ_MODULE = "github.com/bojand/ghz/cmd/ghz@v0.121.0"
SERVICE = "reco.v1.Recommender"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def log(event: str, **fields: Any) -> None:
    line = {"t": round(time.time(), 3), "event": event, **fields}
    print(json.dumps(line, default=str), file=sys.stderr, flush=True)


class TimeUp(Exception):
    """The run's hard time bound is reached."""


class Deadline:
    """One wall-clock budget for a whole run; every wait is cut to what is left of it."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def bound(self, wanted: float) -> float:
        left = self.left()
        if left <= 0:
            raise TimeUp("time limit reached")
        return min(wanted, left)


def install_signal_handlers() -> None:
    """SIGTERM/SIGHUP/SIGALRM become exceptions, so every `finally` kills what it started."""

    def raise_timeup(signum: int, _frame: object) -> None:
        raise TimeUp(f"signal {signal.Signals(signum).name}")

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(sig, raise_timeup)


def python_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def git_info() -> dict[str, Any]:
    """The commit measured. Under loadtest/at_commit.sh (a clean export of one commit) it comes
    from RECO_BENCH_COMMIT; in a work tree, uncommitted or untracked files under reco_sidecar/
    (which the sidecar would run) are listed."""
    if os.environ.get("RECO_BENCH_COMMIT"):
        return {"commit": os.environ["RECO_BENCH_COMMIT"], "subject": os.environ.get("RECO_BENCH_SUBJECT", ""),
                "source": "clean export (git archive)", "serving_code_dirty": False, "dirty_files": []}

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    dirty = git("status", "--porcelain", "--", "reco_sidecar")
    return {"commit": git("rev-parse", "HEAD"), "subject": git("log", "-1", "--format=%s"), "source": "work tree",
            "serving_code_dirty": bool(dirty), "dirty_files": dirty.splitlines()[:20]}


def machine_info() -> dict[str, Any]:
    import platform

    mem_kib = 0
    with contextlib.suppress(OSError):
        for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {"cpus": os.cpu_count(), "mem_gib": round(mem_kib / 2**20, 1), "python": platform.python_version(),
            "kernel": platform.release(), "loadavg": pathlib.Path("/proc/loadavg").read_text().split()[:3]}


# -- processes --------------------------------------------------------------------------------


def kill_group(pgid: int, *, grace: float = 5.0) -> None:
    """SIGTERM the group, then SIGKILL whatever is left of it after `grace` seconds."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    end = time.monotonic() + grace
    while time.monotonic() < end and group_pids(pgid):
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def run_bounded(cmd: Sequence[str], timeout: float, *, stdout: Any = subprocess.PIPE, stderr: Any = subprocess.PIPE,
                env: dict[str, str] | None = None, cwd: pathlib.Path | None = None) -> tuple[int, str, str, float]:
    """Runs cmd in its own process group; kills the group at `timeout` or on any exception.
    Returns (exit code, stdout, stderr, CPU seconds the child used)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(list(cmd), stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, env=env,
                            cwd=cwd, start_new_session=True, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid, grace=1.0)
        out, err = proc.communicate()
        err = (err or "") + f"\n[killed after {timeout:.0f} s]"
    finally:
        if proc.poll() is None:
            kill_group(proc.pid, grace=1.0)
            proc.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc.returncode, out or "", err or "", cpu


def group_pids(pgid: int) -> list[int]:
    """Live (non-zombie) pids of a process group."""
    pids = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def cpu_seconds(pid: int) -> float:
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def system_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds over all cores since boot."""
    fields = [int(x) for x in pathlib.Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


def process_memory(pid: int) -> tuple[int, int]:
    """(PSS, RSS) in KiB; (0, 0) for a process that is gone."""
    pss = rss = 0
    try:
        for line in pathlib.Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    except OSError:
        return 0, 0
    return pss, rss


def tree_memory(pgid: int) -> dict[str, Any]:
    per = {pid: process_memory(pid) for pid in group_pids(pgid)}
    return {"pss_kib": sum(p for p, _ in per.values()), "rss_kib": sum(r for _, r in per.values()),
            "processes": {str(pid): {"pss_kib": p, "rss_kib": r} for pid, (p, r) in sorted(per.items())}}


class MemorySampler:
    """Samples the tree's summed PSS and RSS every `interval` seconds in a thread."""

    def __init__(self, pgid: int, interval: float = 0.25) -> None:
        self.pgid = pgid
        self.interval = interval
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def __enter__(self) -> MemorySampler:
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            m = tree_memory(self.pgid)
            self.samples.append((round(time.monotonic() - self._t0, 3), m["pss_kib"], m["rss_kib"]))
            self._stop.wait(self.interval)

    def summary(self) -> dict[str, Any]:
        if not self.samples:
            return {}
        pss = [s[1] for s in self.samples]
        rss = [s[2] for s in self.samples]
        return {"samples": len(self.samples), "interval_s": self.interval,
                "pss_mib_peak": round(max(pss) / 1024, 1),
                "pss_mib_median": round(sorted(pss)[len(pss) // 2] / 1024, 1),
                "rss_mib_peak": round(max(rss) / 1024, 1),
                "rss_mib_median": round(sorted(rss)[len(rss) // 2] / 1024, 1)}


class CpuMeter:
    """CPU seconds used by the sidecar tree, by everything, and wall time over a span."""

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid

    def __enter__(self) -> CpuMeter:
        self.pids = group_pids(self.pgid)
        self.start = {pid: cpu_seconds(pid) for pid in self.pids}
        self.sys0 = system_busy_seconds()
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.monotonic() - self.t0
        self.end = {pid: cpu_seconds(pid) for pid in self.pids}
        self.sys1 = system_busy_seconds()

    def summary(self, client_cpu_s: float | None = None) -> dict[str, Any]:
        per = {pid: round(self.end.get(pid, 0.0) - self.start[pid], 2) for pid in self.pids}
        sidecar = sum(per.values())
        busy = self.sys1[0] - self.sys0[0]
        out: dict[str, Any] = {"wall_s": round(self.wall, 2), "sidecar_cpu_s": round(sidecar, 2),
                               "sidecar_cpu_per_pid": {str(k): v for k, v in per.items()},
                               "machine_busy_cpu_s": round(busy, 2),
                               "machine_cores_busy": round(busy / self.wall, 2) if self.wall else None}
        if client_cpu_s is not None:
            out["client_cpu_s"] = round(client_cpu_s, 2)
            out["other_cpu_s"] = round(max(0.0, busy - sidecar - client_cpu_s), 2)
        return out


# -- ghz ----------------------------------------------------------------------------------------


def find_ghz(install: bool = True, timeout: float = 600.0) -> str | None:
    """$GHZ, ghz on PATH, $(go env GOPATH)/bin/ghz; else `go install` it when go is there."""
    if os.environ.get("GHZ") and os.access(os.environ["GHZ"], os.X_OK):
        return os.environ["GHZ"]
    if shutil.which("ghz"):
        return shutil.which("ghz")
    go = shutil.which("go")
    if go is None:
        default = pathlib.Path.home() / "go" / "bin" / "ghz"
        return str(default) if default.is_file() and os.access(default, os.X_OK) else None
    gopath = subprocess.run([go, "env", "GOPATH"], capture_output=True, text=True, timeout=60).stdout.strip()
    candidate = pathlib.Path(gopath.split(os.pathsep)[0] or pathlib.Path.home() / "go") / "bin" / "ghz"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    if not install:
        return None
    log("ghz_install", module=GHZ_MODULE)
    code, _, err, _ = run_bounded([go, "install", GHZ_MODULE], timeout)
    if code != 0 or not candidate.is_file():
        raise RuntimeError(f"go install {GHZ_MODULE} failed: {err[-2000:]}")
    return str(candidate)


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


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q / 100.0 * len(sorted_values) + 0.5) - 1))
    return sorted_values[i]


def summarize_ghz(report: dict[str, Any], run: GhzRun) -> dict[str, Any]:
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
    # ghz refuses more connections than concurrent workers.
    run = dataclasses.replace(run, connections=min(run.connections, run.concurrency))
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
    summary = summarize_ghz(json.loads(out_json.read_text()), run)
    summary["ghz_exit"] = code
    summary["client_cpu_s"] = round(cpu, 2)
    log("ghz_done", label=run.label, rps=summary["rps"], p99_ms=summary["latency_ms"]["p99"],
        errors=summary["errors"], codes=summary["status_codes"])
    return summary


# -- the benchmark model ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    users: int = 200_000
    items: int = 100_000
    interactions: int = 5_000_000
    factors: int = 64
    iterations: int = 10
    name: str = "bench"
    seed: int = 42

    @property
    def key(self) -> str:
        return f"{self.users}u-{self.items}i-{self.interactions}x-{self.factors}f-{self.iterations}it-s{self.seed}"


SMOKE_SPEC = ModelSpec(users=2_000, items=1_000, interactions=60_000, factors=16, iterations=5, name="smoke")


@dataclass(frozen=True)
class BenchModel:
    spec: ModelSpec
    root: pathlib.Path
    name: str
    version: int = 1
    build_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def version_dir(self) -> pathlib.Path:
        return self.root / self.name / str(self.version)

    def bytes_on_disk(self, version: int | None = None) -> int:
        d = self.root / self.name / str(version or self.version)
        return sum(p.stat().st_size for p in d.iterdir() if p.is_file())


def ensure_model(work: pathlib.Path, spec: ModelSpec, deadline: Deadline, *, rebuild: bool = False) -> BenchModel:
    """The trained model for `spec`, built once with the CLI (make-demo-data, train) and cached.
    `rebuild` trains it again with the current code (after the artifact format or the trainer
    changed: the cache is keyed by the data and training parameters only). A model is built in
    a private directory and renamed into place, so a reader of the cache (another benchmark)
    never sees a half-built one; processes still mapping the old files keep them."""
    base = work / f"model-{spec.key}"
    root = base / "root"
    stamp = base / "built.json"
    if not rebuild and stamp.is_file() and (root / spec.name / "1" / "manifest.json").is_file():
        built = json.loads(stamp.read_text())
        log("model_cached", path=str(root / spec.name / "1"))
        return BenchModel(spec, root, spec.name, 1, built.get("seconds", {}))
    tmp = work / f".building-{spec.key}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        seconds = _build_model(tmp, spec, deadline)
        (tmp / "built.json").write_text(json.dumps({"spec": dataclasses.asdict(spec), "seconds": seconds}, indent=2))
        old = work / f".old-{spec.key}-{os.getpid()}"
        if base.exists():
            os.rename(base, old)
        os.rename(tmp, base)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return BenchModel(spec, root, spec.name, 1, seconds)


def _build_model(base: pathlib.Path, spec: ModelSpec, deadline: Deadline) -> dict[str, float]:
    root = base / "root"
    csv_path = base / "interactions.csv"
    env = python_env()
    seconds: dict[str, float] = {}
    steps = [
        ("make_demo_data", [sys.executable, "-m", "reco_sidecar", "make-demo-data", "--out", str(csv_path),
                            "--users", str(spec.users), "--items", str(spec.items),
                            "--interactions", str(spec.interactions), "--seed", str(spec.seed)]),
        ("train", [sys.executable, "-m", "reco_sidecar", "--log-level", "warning", "train",
                   "--interactions", str(csv_path), "--model-root", str(root), "--name", spec.name,
                   "--factors", str(spec.factors), "--iterations", str(spec.iterations), "--holdout", "0",
                   "--no-progress"]),
    ]
    for step, cmd in steps:
        log("model_build", step=step, spec=dataclasses.asdict(spec))
        started = time.monotonic()
        code, _, err, _ = run_bounded(cmd, deadline.bound(3600), env=env, cwd=ROOT)
        if code != 0:
            raise RuntimeError(f"{step} failed ({code}): {err[-3000:]}")
        seconds[step] = round(time.monotonic() - started, 1)
    if not (root / spec.name / "1" / "manifest.json").is_file():
        raise RuntimeError(f"training published no version 1 under {root / spec.name}")
    return seconds


def publish_copy(model: BenchModel, version: int) -> pathlib.Path:
    """Publishes `version` as a byte copy of version 1 (a real copy, not links: separate page
    cache, as a retrained model would have), manifest version rewritten, checksums unchanged."""
    model_dir = model.root / model.name
    dst = model_dir / str(version)
    if (dst / "manifest.json").is_file():
        return dst
    tmp = model_dir / f".tmp-bench-{version}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(model.version_dir, tmp)
    manifest = json.loads((tmp / "manifest.json").read_text())
    manifest["version"] = version
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.rename(tmp, dst)
    return dst


def read_ids(version_dir: pathlib.Path) -> tuple[list[str], list[str]]:
    import msgpack

    users = msgpack.unpackb((version_dir / "user_ids.msgpack").read_bytes())
    items = msgpack.unpackb((version_dir / "item_ids.msgpack").read_bytes())
    return users, items


def write_data_files(version_dir: pathlib.Path, out_dir: pathlib.Path, *, requests: int = 20_000,
                     unknown_user_share: float = 0.05, unknown_item_share: float = 0.0, batch_users: int = 10,
                     n: int = 10, seed: int = 1) -> dict[str, pathlib.Path]:
    """ghz -D files: arrays of requests with real ids from the model's id maps (ghz cycles
    through them), a share of them unknown ids."""
    users, items = read_ids(version_dir)
    rng = random.Random(seed)
    counter = iter(range(10**9))

    def user() -> str:
        return f"unknown-user-{next(counter)}" if rng.random() < unknown_user_share else rng.choice(users)

    def item() -> str:
        return f"unknown-item-{next(counter)}" if rng.random() < unknown_item_share else rng.choice(items)

    out_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "Recommend": [{"user_id": user(), "n": n} for _ in range(requests)],
        "Recommend-unknown": [{"user_id": f"unknown-user-{i}", "n": n} for i in range(1000)],
        "Similar": [{"item_id": item(), "n": n} for _ in range(requests)],
        "BatchRecommend": [{"user_ids": [user() for _ in range(batch_users)], "n": n}
                           for _ in range(max(1, requests // max(1, batch_users // 4)))],
    }
    paths = {}
    for call, rows in data.items():
        path = out_dir / f"data-{call}.json"
        path.write_text(json.dumps(rows))
        paths[call] = path
    return paths


# -- the sidecar --------------------------------------------------------------------------------


@dataclass
class Sidecar:
    proc: subprocess.Popen[bytes]
    ready: dict[str, Any]
    stderr_path: pathlib.Path
    ready_seconds: float

    @property
    def address(self) -> str:
        return str(self.ready["address"])

    @property
    def worker_addresses(self) -> list[str]:
        return list(self.ready["worker_addresses"])

    @property
    def pgid(self) -> int:
        return self.proc.pid

    def worker_pids(self) -> list[int]:
        return [p for p in group_pids(self.pgid) if p != self.proc.pid]


def sidecar_command(model: BenchModel, workers: int, extra: Sequence[str], log_level: str) -> list[str]:
    return [sys.executable, "-m", "reco_sidecar", "--log-level", log_level, "serve",
            "--model-root", str(model.root), "--model", model.name, "--version", str(model.version),
            "--host", "127.0.0.1", "--port", "0", "--workers", str(workers),
            "--parent-pid", str(os.getpid()), "--exit-on-stdin-eof", *extra]


@contextlib.contextmanager
def running_sidecar(model: BenchModel, *, workers: int, log_path: pathlib.Path, extra: Sequence[str] = (),
                    log_level: str = "info", ready_timeout: float = 120.0) -> Iterator[Sidecar]:
    """A ready sidecar in its own session; its whole process group is killed on exit, whatever
    happened. It also dies with this process (--parent-pid) and when its stdin closes."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as err:
        started = time.monotonic()
        proc = subprocess.Popen(sidecar_command(model, workers, extra, log_level), stdout=subprocess.PIPE,
                                stderr=err, stdin=subprocess.PIPE, start_new_session=True,
                                env=python_env(OMP_NUM_THREADS="1"), cwd=ROOT)
    try:
        ready = wait_ready(proc, ready_timeout)
        sidecar = Sidecar(proc, ready, log_path, time.monotonic() - started)
        log("sidecar_ready", workers=workers, address=sidecar.address, seconds=round(sidecar.ready_seconds, 3),
            extra=list(extra))
        yield sidecar
    finally:
        kill_group(proc.pid, grace=5.0)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        left = group_pids(proc.pid)
        if left:
            log("sidecar_leftovers", pids=left)


def stub(address: str) -> Any:
    """A Recommender stub on a fresh channel (the caller closes stub.channel)."""
    import grpc

    from reco_sidecar.gen.reco.v1 import reco_pb2_grpc

    channel = grpc.insecure_channel(address)
    s = reco_pb2_grpc.RecommenderStub(channel)
    s.channel = channel  # type: ignore[attr-defined]
    return s


def write_json(path: pathlib.Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=str) + "\n")
