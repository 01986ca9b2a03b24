"""/proc accounting of a process tree: CPU seconds, memory (PSS, RSS, smaps fields) and how
much of a mapped file's pages a process shares. Linux only; a process that is gone counts as 0."""

from __future__ import annotations

import os
import pathlib
import threading
import time
from collections import defaultdict
from typing import Any

from harness.procs import group_pids, stat_fields

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process."""
    fields = stat_fields(pid)
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def system_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds over all cores since boot."""
    fields = [int(x) for x in pathlib.Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


def smaps_rollup(pid: int) -> dict[str, int]:
    """Every numeric field of /proc/<pid>/smaps_rollup (Rss, Pss, Pss_Anon, Pss_File,
    Shared_Clean ...), KiB; empty for a process that is gone."""
    out: dict[str, int] = {}
    try:
        text = pathlib.Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return out
    for line in text.splitlines()[1:]:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0])
    return out


def file_mappings(pid: int) -> dict[str, dict[str, int]]:
    """/proc/<pid>/smaps summed per mapped file path: {path: {"Rss": KiB, "Pss": ..., "Shared_Clean": ...}}.
    Anonymous and special mappings ([heap], [stack] ...) are left out."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    try:
        text = pathlib.Path(f"/proc/{pid}/smaps").read_text()
    except OSError:
        return {}
    current: str | None = None
    for line in text.splitlines():
        head = line.split(maxsplit=5)
        if head and "-" in head[0] and not head[0].endswith(":"):
            # A mapping's header: address range, perms, offset, device, inode, [path].
            path = head[5] if len(head) == 6 else ""
            current = path if path.startswith("/") else None
            continue
        if current is None:
            continue
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[current][key] += int(parts[0])
    return {path: dict(fields) for path, fields in out.items()}


def process_memory(pid: int) -> tuple[int, int]:
    """(PSS, RSS) in KiB; (0, 0) for a process that is gone."""
    rollup = smaps_rollup(pid)
    return rollup.get("Pss", 0), rollup.get("Rss", 0)


def tree_memory(pgid: int) -> dict[str, Any]:
    """Summed PSS and RSS of a process group, and each member's."""
    per = {pid: process_memory(pid) for pid in group_pids(pgid)}
    return {"pss_kib": sum(p for p, _ in per.values()), "rss_kib": sum(r for _, r in per.values()),
            "processes": {str(pid): {"pss_kib": p, "rss_kib": r} for pid, (p, r) in sorted(per.items())}}


class MemorySampler:
    """Samples the tree's summed PSS and RSS every `interval` seconds in a thread, and each
    member's CPU seconds (the last reading of a process that exits between two samples is
    kept: at most `interval` of its CPU goes uncounted). CPU seconds, unlike wall time, hardly
    move when other work shares the machine."""

    def __init__(self, pgid: int, interval: float = 0.25) -> None:
        self.pgid = pgid
        self.interval = interval
        self.samples: list[tuple[float, int, int]] = []
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)
        self._t0 = time.monotonic()

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
            for pid in m["processes"]:
                self.cpu[int(pid)] = max(self.cpu.get(int(pid), 0.0), cpu_seconds(int(pid)))
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
                "rss_mib_median": round(sorted(rss)[len(rss) // 2] / 1024, 1),
                "cpu_s": round(sum(self.cpu.values()), 1)}


class CpuMeter:
    """CPU seconds used by a process group, by the whole machine, and wall time over a span."""

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid
        self.pids: list[int] = []
        self.start: dict[int, float] = {}
        self.end: dict[int, float] = {}
        self.sys0 = self.sys1 = (0.0, 0.0)
        self.t0 = self.wall = 0.0

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
