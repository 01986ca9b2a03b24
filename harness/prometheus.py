"""A real Prometheus server for tests: Debian's `prometheus` (2.42) scraping one target every
second, its storage in a temporary directory, its HTTP API on a loopback port chosen here.
It runs in its own session, so stopping it kills its whole process group."""

from __future__ import annotations

import contextlib
import json
import pathlib
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from harness.procs import kill_group
from harness.seaweedfs import free_ports

START_TIMEOUT = 60.0
JOB = "reco"

CONFIG = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: {job}
    static_configs:
      - targets: ["{target}"]
"""


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


def promtool_binary() -> str | None:
    return shutil.which("promtool")


@dataclass
class Prometheus:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: pathlib.Path

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant query's result vector; raises ValueError with Prometheus's error for a
        query it refuses (a bad expression, an unknown function)."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as e:
            body = json.loads(e.read() or b"{}")
        if body.get("status") != "success":
            raise ValueError(f"{promql!r}: {body.get('errorType')}: {body.get('error')}")
        result = body["data"]["result"]
        return result if isinstance(result, list) else [result]

    def names(self) -> set[str]:
        """Every metric name Prometheus holds a series of from the scraped job."""
        return {r["metric"]["__name__"] for r in self.query(f'count by (__name__) ({{job="{JOB}"}})')}

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


@contextlib.contextmanager
def running_prometheus(binary: str, target: str) -> Iterator[Prometheus]:
    """Prometheus scraping `target` ("host:port", path /metrics) as job `reco`."""
    with tempfile.TemporaryDirectory(prefix="prometheus-") as tmp:
        work = pathlib.Path(tmp)
        (work / "prometheus.yml").write_text(CONFIG.format(job=JOB, target=target))
        (port,) = free_ports(1)
        log_path = work / "prometheus.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [binary, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}"],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True, cwd=work)
        server = Prometheus(proc, port, log_path)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"prometheus exited with {proc.returncode}: {server.log_tail()}")
                with contextlib.suppress(OSError, ValueError):
                    server.query("1")
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"prometheus not ready in {START_TIMEOUT} s: {server.log_tail()}")
                time.sleep(0.1)
            yield server
        finally:
            kill_group(proc.pid, grace=5)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
