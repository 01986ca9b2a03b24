"""Tracing's switch and its failure mode, without a collector: off by default (no span, no
trace id in any line), refused settings named at start, and a collector nobody answers at costs
no call and holds no exit."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import uuid

import pytest

from harness.procs import wait_until
from harness.seaweedfs import free_ports
from reco_sidecar.artifact import loader
from reco_sidecar.common.exit_codes import ExitCode
from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.server import running_sidecar

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture(scope="module")
def user_id(demo_root: pathlib.Path) -> str:
    return str(loader.open_model(demo_root / "demo" / "1").users.ids[3])


def test_tracing_is_off_by_default_and_no_line_carries_a_trace(demo_root: pathlib.Path, user_id: str) -> None:
    env = {k: "" for k in os.environ if k.startswith("OTEL_")}
    with running_sidecar(demo_root, "demo", extra_args=["--access-log", "on"], env=env) as sc:
        rid = uuid.uuid4().hex
        sc.stub().Recommend(reco_pb2.RecommendRequest(user_id=user_id, n=3),
                            metadata=[("traceparent", TRACEPARENT), ("x-request-id", rid)])
        events = sc.log_events()
    (line,) = [e for e in events if e.get("event") == "rpc" and e.get("request_id") == rid]
    assert "trace_id" not in line and "span_id" not in line
    assert not [e for e in events if e.get("event") in ("tracing_on", "tracing_sdk")]


@pytest.mark.parametrize(("flag", "value", "named"), [
    ("--otlp-endpoint", "127.0.0.1:4317", "--otlp-endpoint must be http://host:port"),
    ("--trace-sample-ratio", "1.5", "must be between 0 and 1"),
    ("--trace-sample-ratio", "nan", "must be between 0 and 1"),
])
def test_a_bad_tracing_setting_stops_the_start_naming_it(demo_root: pathlib.Path, flag: str, value: str,
                                                          named: str) -> None:
    done = subprocess.run([sys.executable, "-m", "reco_sidecar", "serve", "--model-root", str(demo_root),
                           "--model", "demo", "--port", "0", flag, value], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == ExitCode.CONFIG
    assert named in done.stderr


def test_a_collector_nobody_answers_at_fails_no_call_and_holds_no_exit(demo_root: pathlib.Path,
                                                                       user_id: str) -> None:
    (dead,) = free_ports(1)  # nothing listens there
    args = ["--otlp-endpoint", f"http://127.0.0.1:{dead}", "--access-log", "on", "--grace", "1"]
    with running_sidecar(demo_root, "demo", workers=2, extra_args=args,
                         env={"OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_EXPORTER_OTLP_TIMEOUT": "2"}) as sc:
        stub = sc.stub()
        rids = [uuid.uuid4().hex for _ in range(200)]
        for rid in rids:
            assert stub.Recommend(reco_pb2.RecommendRequest(user_id=user_id, n=3), timeout=10,
                                  metadata=[("traceparent", TRACEPARENT), ("x-request-id", rid)]).items
        lines = [e for e in sc.log_events() if e.get("event") == "rpc" and e.get("request_id") in set(rids)]
        # every line in the caller's trace, each with the span of its own call
        assert len(lines) == 200
        assert {e["trace_id"] for e in lines} == {TRACEPARENT.split("-")[1]}
        assert len({e["span_id"] for e in lines}) == 200
        # the SDK is started in each worker, after the fork, never in the supervisor
        started = {e["pid"] for e in sc.log_events() if e.get("event") == "tracing_on"}
        assert len(started) == 2 and sc.proc.pid not in started
        # the exporter's failures are JSON lines of their own
        wait_until(lambda: any(e.get("event") == "tracing_sdk" for e in sc.log_events()), 60,
                   "the exporter's failure logged")
        sc.proc.send_signal(signal.SIGTERM)
        # a worker gives the spans still queued 2 s, then exits; the bound only stops a hung run
        assert sc.proc.wait(60) == ExitCode.OK
