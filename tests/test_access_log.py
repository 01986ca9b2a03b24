"""The per-RPC log line (--access-log) and the lifecycle events, read from a real sidecar's stderr."""

from __future__ import annotations

import os
import pathlib
import signal
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from reco_sidecar.artifact import loader
from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.server import Sidecar, running_sidecar
from tests.support.versions import copy_version


@pytest.fixture(scope="module")
def sidecar(demo_root: pathlib.Path) -> Iterator[Sidecar]:
    with running_sidecar(demo_root, "demo", workers=1, extra_args=["--access-log", "on"]) as s:
        yield s


@pytest.fixture(scope="module")
def user_id(demo_root: pathlib.Path) -> str:
    return loader.open_model(demo_root / "demo" / "1", ).users.ids[3]


def _rpc_lines(sc: Sidecar, request_id: str) -> list[dict[str, Any]]:
    return [e for e in sc.log_events() if e.get("event") == "rpc" and e.get("request_id") == request_id]


def _one_line(sc: Sidecar, request_id: str) -> dict[str, Any]:
    # The line is written before the response leaves the server, so it is there already.
    lines = _rpc_lines(sc, request_id)
    assert len(lines) == 1, lines
    return lines[0]


def test_recommend_logs_one_line_with_the_callers_request_id(sidecar: Sidecar, user_id: str) -> None:
    rid = uuid.uuid4().hex
    stub = sidecar.stub()
    resp = stub.Recommend(reco_pb2.RecommendRequest(user_id=user_id, n=7), metadata=[("x-request-id", rid)])
    pid = stub.GetModelStatus(reco_pb2.GetModelStatusRequest()).worker.pid
    line = _one_line(sidecar, rid)
    assert line["method"] == "Recommend" and line["code"] == "OK" and line["level"] == "info"
    assert (line["model"], line["version"]) == ("demo", resp.version)
    assert line["users"] == 1 and line["items"] == 7 and line["source"] == "model"
    assert line["worker_pid"] == pid == line["pid"]
    assert isinstance(line["latency_ms"], float) and line["latency_ms"] >= 0
    assert line["timestamp"].endswith("Z")


def test_a_refused_call_is_logged_with_its_status_code(sidecar: Sidecar) -> None:
    rid = uuid.uuid4().hex
    with pytest.raises(grpc.RpcError) as e:
        sidecar.stub().Recommend(reco_pb2.RecommendRequest(user_id="x", n=0), metadata=[("x-request-id", rid)])
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    line = _one_line(sidecar, rid)
    assert (line["method"], line["code"]) == ("Recommend", "INVALID_ARGUMENT")


def test_a_stream_is_logged_once_with_its_response_count_model_and_version(sidecar: Sidecar) -> None:
    rid = uuid.uuid4().hex
    users = [f"nobody-{i}" for i in range(5)]
    got = list(sidecar.stub().BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=users, n=3),
                                             metadata=[("x-request-id", rid)]))
    assert len(got) == 5
    line = _one_line(sidecar, rid)
    assert (line["method"], line["code"], line["responses"], line["users"]) == ("BatchRecommend", "OK", 5, 5)
    assert (line["model"], line["version"]) == ("demo", got[0].version)


def test_similar_and_status_calls_are_logged_and_health_probes_are_not(sidecar: Sidecar,
                                                                       demo_root: pathlib.Path) -> None:
    item = loader.open_model(demo_root / "demo" / "1", ).items.ids[0]
    rid = uuid.uuid4().hex
    stub = sidecar.stub()
    stub.Similar(reco_pb2.SimilarRequest(item_id=item, n=4), metadata=[("x-request-id", rid)])
    stub.GetModelStatus(reco_pb2.GetModelStatusRequest(), metadata=[("x-request-id", rid)])
    with grpc.insecure_channel(sidecar.address) as channel:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), metadata=[("x-request-id", rid)])
    lines = _rpc_lines(sidecar, rid)
    assert sorted(line["method"] for line in lines) == ["GetModelStatus", "Similar"]
    similar = next(line for line in lines if line["method"] == "Similar")
    assert similar["items"] == 4


def test_a_call_without_request_id_is_logged_with_an_empty_one(sidecar: Sidecar) -> None:
    before = len([e for e in sidecar.log_events() if e.get("event") == "rpc" and e.get("request_id") == ""])
    sidecar.stub().GetModelStatus(reco_pb2.GetModelStatusRequest())
    after = len([e for e in sidecar.log_events() if e.get("event") == "rpc" and e.get("request_id") == ""])
    assert after == before + 1


def test_lifecycle_events_from_start_through_reload_to_shutdown(demo_copy: pathlib.Path) -> None:
    v2 = copy_version(demo_copy / "demo", 1)
    with running_sidecar(demo_copy, "demo", workers=2, extra_args=["--version", "1"]) as sc:
        reply = sc.stub().Reload(reco_pb2.ReloadRequest(version=str(v2)))
        assert reply.new_version == v2
        os.kill(sc.proc.pid, signal.SIGTERM)
        assert sc.proc.wait(30) == 0
        events = sc.log_events()
    names = [e["event"] for e in events]
    supervisor = sc.proc.pid
    for name in ("supervisor_start", "ready", "reload_start", "reload_done", "supervisor_stopping",
                 "supervisor_exit"):
        assert [e["pid"] for e in events if e["event"] == name] == [supervisor], name
    worker_pids = {e["worker_pid"] for e in events if e["event"] == "worker_start"}
    assert len(worker_pids) == 2
    for name in ("worker_serving", "worker_draining", "worker_exit"):
        assert {e["pid"] for e in events if e["event"] == name} == worker_pids, name
    loaded = {(e["pid"], e["version"]) for e in events if e["event"] == "model_loaded"}
    assert loaded == {(p, v) for p in worker_pids for v in (1, v2)}
    assert names.index("ready") < names.index("reload_start") < names.index("reload_done") \
        < names.index("supervisor_stopping") < names.index("supervisor_exit")
    assert all(e["level"] in ("debug", "info", "warning", "error") for e in events)


def test_console_format_and_level_come_from_the_environment(demo_root: pathlib.Path) -> None:
    rid = uuid.uuid4().hex
    with running_sidecar(demo_root, "demo", env={"RECO_LOG_FORMAT": "console", "RECO_ACCESS_LOG": "on"}) as sc:
        sc.stub().GetModelStatus(reco_pb2.GetModelStatusRequest(), metadata=[("x-request-id", rid)])
        text = sc.stderr()
        assert not [e for e in sc.log_events() if "event" in e]
    line = next(line for line in text.splitlines() if rid in line)
    assert "rpc" in line and "GetModelStatus" in line and not line.startswith("{")
    rid = uuid.uuid4().hex
    with running_sidecar(demo_root, "demo", env={"RECO_LOG_LEVEL": "warning"}) as sc:
        sc.stub().GetModelStatus(reco_pb2.GetModelStatusRequest(), metadata=[("x-request-id", rid)])
        assert rid not in sc.stderr()
        assert not [e for e in sc.log_events() if e.get("level") == "info"]


@pytest.mark.parametrize("mode", ["sampled", "off"])
def test_without_the_full_log_failures_are_still_logged_and_ok_calls_are_not_each(
        demo_root: pathlib.Path, user_id: str, mode: str) -> None:
    # sampled is the default; no call here may count as slow
    args = ["--slow-call-ms", "600000"] + ([] if mode == "sampled" else ["--access-log", mode])
    rid = uuid.uuid4().hex
    with running_sidecar(demo_root, "demo", extra_args=args) as sc:
        stub = sc.stub()
        for _ in range(150):
            stub.Recommend(reco_pb2.RecommendRequest(user_id=user_id, n=3), metadata=[("x-request-id", rid)])
        with pytest.raises(grpc.RpcError):
            stub.Recommend(reco_pb2.RecommendRequest(user_id=user_id, n=0), metadata=[("x-request-id", rid)])
        # the failed call was the last: once its line is there, every line is
        lines = _rpc_lines(sc, rid)
    assert [line["code"] for line in lines if line["code"] != "OK"] == ["INVALID_ARGUMENT"]
    ok = [line for line in lines if line["code"] == "OK"]
    # sampled: one call in 100 (150 calls: one line); off: none
    assert len(ok) == (1 if mode == "sampled" else 0), ok


def test_a_slow_call_is_always_logged_as_a_warning(demo_root: pathlib.Path, user_id: str) -> None:
    rid = uuid.uuid4().hex
    # every call takes at least 0 ms: all are slow by this threshold
    with running_sidecar(demo_root, "demo", extra_args=["--access-log", "off", "--slow-call-ms", "0"]) as sc:
        sc.stub().Recommend(reco_pb2.RecommendRequest(user_id=user_id, n=3), metadata=[("x-request-id", rid)])
        line = _one_line(sc, rid)
    assert (line["code"], line["level"]) == ("OK", "warning")
