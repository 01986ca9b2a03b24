"""What every Recommender call costs to observe: a few dict updates in process.

Counts, latency buckets and response sources are tallied here, on the worker's event loop,
and handed to the Prometheus multiprocess files by `metrics.flush` about once a second
(a file-backed observation per call was a fifth of a call's CPU). The access log line is a
choice (`--access-log`): every call (`on`), none (`off`) or one call in SAMPLE_EVERY
(`sampled`, the default); calls that fail or take longer than `--slow-call-ms` are always
logged.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reco_sidecar.common import logs

log = logs.get("reco_sidecar.rpc")

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
ACCESS_LOG_MODES = ("on", "off", "sampled")
SAMPLE_EVERY = 100


@dataclass
class Series:
    """One (method, code) pair since the last flush."""

    count: int = 0
    seconds: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))


@dataclass
class Tally:
    rpcs: dict[tuple[str, str], Series] = field(default_factory=dict)
    responses: dict[tuple[str, str], int] = field(default_factory=dict)
    batch_sizes: list[int] = field(default_factory=lambda: [0] * (len(BATCH_BUCKETS) + 1))
    batch_sum: int = 0
    batch_waits: int = 0  # batches whose drain waited for company before scoring

    def rpc(self, method: str, code: str, seconds: float) -> None:
        s = self.rpcs.get((method, code))
        if s is None:
            s = self.rpcs[(method, code)] = Series()
        s.count += 1
        s.seconds += seconds
        # Prometheus counts a value in the first bucket whose bound is >= it.
        s.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def response(self, method: str, source: str, count: int = 1) -> None:
        key = (method, source)
        self.responses[key] = self.responses.get(key, 0) + count

    def batch(self, size: int, waited: bool = False) -> None:
        self.batch_sizes[bisect.bisect_left(BATCH_BUCKETS, size)] += 1
        self.batch_sum += size
        self.batch_waits += waited

    def take(self) -> Tally:
        """Everything counted so far; this tally starts again from zero."""
        taken = Tally(self.rpcs, self.responses, self.batch_sizes, self.batch_sum, self.batch_waits)
        self.rpcs, self.responses = {}, {}
        self.batch_sizes, self.batch_sum, self.batch_waits = [0] * (len(BATCH_BUCKETS) + 1), 0, 0
        return taken

    def empty(self) -> bool:
        return not self.rpcs and not self.responses and not self.batch_sum


class AccessLog:
    def __init__(self, mode: str, slow_seconds: float) -> None:
        if mode not in ACCESS_LOG_MODES:
            raise ValueError(f"access log mode must be one of {ACCESS_LOG_MODES}, got {mode!r}")
        self._every = {"on": 1, "off": 0, "sampled": SAMPLE_EVERY}[mode]
        self._slow = slow_seconds
        self._calls = 0
        self._pid = os.getpid()

    def wanted(self, code: str, seconds: float) -> bool:
        if code != "OK" or seconds >= self._slow:
            return True
        if not self._every:
            return False
        self._calls += 1
        return self._calls % self._every == 0

    def write(self, method: str, code: str, seconds: float, request_id: str, facts: Mapping[str, Any]) -> None:
        level = log.warning if seconds >= self._slow else log.info
        level("rpc", method=method, code=code, latency_ms=round(seconds * 1e3, 3), request_id=request_id,
              worker_pid=self._pid, **facts)
