"""A real trace collector for tests: Jaeger's all-in-one binary with in-memory storage, its OTLP
gRPC receiver and its query API on loopback ports chosen here.

scripts/jaeger.sh builds the binary once into a cache outside the repository; RECO_JAEGER
names another binary. Jaeger reads one YAML file (an OpenTelemetry Collector configuration):
written per run, listening only on 127.0.0.1, with no metrics port, health or sampling
extensions. It runs in its own session, so stopping it kills its whole process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from harness.paths import ROOT
from harness.procs import kill_group
from harness.seaweedfs import free_ports

START_TIMEOUT = 60.0

CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info

extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000

receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{otlp}

processors:
  batch:
    timeout: 100ms

exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


def jaeger_binary() -> str | None:
    """The jaeger binary if it is built (never starts the slow build itself)."""
    explicit = os.environ.get("RECO_JAEGER")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    found = subprocess.run([str(ROOT / "scripts" / "jaeger.sh"), "--cached-only"],
                           capture_output=True, text=True, check=False)
    path = found.stdout.strip()
    return path if found.returncode == 0 and path else None


@dataclass
class Jaeger:
    binary: str
    workdir: pathlib.Path
    otlp_port: int
    query_port: int
    query_grpc_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def otlp_endpoint(self) -> str:
        """What the sidecar's --otlp-endpoint names (plaintext OTLP/gRPC)."""
        return f"http://127.0.0.1:{self.otlp_port}"

    @property
    def log_path(self) -> pathlib.Path:
        return self.workdir / "jaeger.log"

    def start(self) -> None:
        config = self.workdir / "jaeger.yaml"
        config.write_text(CONFIG.format(otlp=self.otlp_port, query=self.query_port,
                                        query_grpc=self.query_grpc_port))
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([self.binary, "--config", str(config)], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.workdir)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jaeger exited with {self.proc.returncode}: {self.log_tail()}")
            if self._answers():
                return
            time.sleep(0.1)
        raise TimeoutError(f"jaeger not ready in {START_TIMEOUT} s: {self.log_tail()}")

    def stop(self) -> None:
        """Kills the collector at once (SIGKILL of its group): what a crashed collector looks like."""
        if self.proc is not None:
            kill_group(self.proc.pid, grace=0)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
            self.proc = None

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    def _answers(self) -> bool:
        try:
            self._get("/api/services")
        except (OSError, urllib.error.URLError):
            return False
        return True

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.query_port}{path}", timeout=5) as r:
            return json.loads(r.read())

    def services(self) -> list[str]:
        """The service names Jaeger holds spans of."""
        return list(self._get("/api/services").get("data") or [])

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """The trace as Jaeger's query API returns it (`data[0]`: spans, processes), or None
        while Jaeger does not have it."""
        try:
            body = self._get(f"/api/traces/{trace_id}")
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise
        data = body.get("data") or []
        return data[0] if data else None


@contextlib.contextmanager
def running_jaeger(binary: str) -> Iterator[Jaeger]:
    with tempfile.TemporaryDirectory(prefix="jaeger-") as tmp:
        otlp, query, query_grpc = free_ports(3)
        jaeger = Jaeger(binary, pathlib.Path(tmp), otlp, query, query_grpc)
        try:
            jaeger.start()
            yield jaeger
        finally:
            jaeger.stop()
