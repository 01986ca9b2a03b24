"""BatchRecommend streams and call bookkeeping on the asyncio workers, through real channels:
chunked messages, per-user id checks, one model version per stream, status codes of
malformed, cancelled and timed-out calls in the log and the metrics, and health and
reflection that idle streams cannot starve. What one worker does is checked on its real
server in this process; log lines, the metrics endpoint and reloads on a process tree."""

from __future__ import annotations

import json
import pathlib
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from harness.procs import wait_until
from reco_sidecar.artifact import layout, loader
from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.server import InProcess, Sidecar, in_process_sidecar, running_sidecar
from tests.support.versions import copy_version

WAIT = 30.0  # a bound for a condition to become true, never a timing assertion


@pytest.fixture(scope="module")
def users(demo_version_dir: pathlib.Path) -> list[str]:
    return list(loader.open_model(demo_version_dir).users.ids)


@pytest.fixture(scope="module")
def server(demo_root: pathlib.Path) -> Iterator[InProcess]:
    with in_process_sidecar(demo_root, "demo", extra_args=["--batch-chunk", "16"]) as s:
        yield s


@pytest.fixture(scope="module")
def sidecar(demo_root: pathlib.Path) -> Iterator[Sidecar]:
    with running_sidecar(demo_root, "demo", extra_args=["--batch-chunk", "16", "--metrics-port", "0"]) as sc:
        yield sc


def _answers(messages: list[reco_pb2.BatchRecommendResponse]) -> list[tuple[Any, ...]]:
    """Every user's answer, whichever form the stream used."""
    out = []
    for m in messages:
        per_user = list(m.users) if m.users else [m]
        for r in per_user:
            out.append((m.version, r.index, r.user_id, tuple((i.item_id, i.score, i.rank) for i in r.items),
                        r.source, r.jsonld, r.error.code, r.error.message))
    return out


def test_chunked_messages_carry_the_same_answers_as_one_user_per_message(server: InProcess, users: list[str]) -> None:
    ids = [*users[:30], "ghost-1", *users[30:45], "ghost-2"]
    stub = server.stub()
    one = list(stub.BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=ids, n=5, include_jsonld=True),
                                   timeout=30))
    chunked = list(stub.BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=ids, n=5, include_jsonld=True,
                                                                      users_per_message=7), timeout=30))
    assert len(one) == len(ids) and all(not m.users for m in one)
    assert all(1 <= len(m.users) <= 7 and not m.user_id and not m.items for m in chunked)
    # --batch-chunk 16: a message never spans two chunks (7, 7, 2, 7, 7, 2, ...)
    sizes = [len(m.users) for m in chunked]
    assert sizes == [min(7, 16 - (i % 3) * 7) for i in range(len(sizes) - 1)] + sizes[-1:]
    assert sum(sizes) == len(ids)
    assert _answers(chunked) == _answers(one)
    assert [a[1] for a in _answers(chunked)] == list(range(len(ids)))


def test_batch_checks_every_id_as_recommend_does_and_never_echoes_a_refused_one(
        server: InProcess, users: list[str]) -> None:
    huge = "x" * (10 * 1024 * 1024)
    ids = ["", "y" * 600, users[0], huge]
    for per_message in (0, 10):
        got = _answers(list(server.stub().BatchRecommend(
            reco_pb2.BatchRecommendRequest(user_ids=ids, n=3, users_per_message=per_message), timeout=60)))
        assert [(a[1], a[6]) for a in got] == [(0, "INVALID_ARGUMENT"), (1, "INVALID_ARGUMENT"), (2, ""),
                                               (3, "INVALID_ARGUMENT")]
        assert got[0][7] == "user_ids[0]: must not be empty"
        assert got[1][7] == "user_ids[1]: longer than 512 bytes" and got[3][7].endswith("longer than 512 bytes")
        assert [a[2] for a in got] == ["", "", users[0], ""] and not got[0][3] and not got[3][3]
        assert len(got[2][3]) == 3
    # Recommend refuses the same ids
    for bad in ("", "y" * 600):
        with pytest.raises(grpc.RpcError) as e:
            server.stub().Recommend(reco_pb2.RecommendRequest(user_id=bad, n=3), timeout=30)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_omit_jsonld_leaves_it_empty_and_the_default_renders_it(server: InProcess, users: list[str],
                                                                 demo_version_dir: pathlib.Path) -> None:
    item = loader.open_model(demo_version_dir).items.ids[0]
    stub = server.stub()
    for user in (users[0], "ghost"):  # scored, and the popular fallback
        full = stub.Recommend(reco_pb2.RecommendRequest(user_id=user, n=4), timeout=30)
        bare = stub.Recommend(reco_pb2.RecommendRequest(user_id=user, n=4, omit_jsonld=True), timeout=30)
        assert full.jsonld.startswith('{"@context"') and bare.jsonld == ""
        assert list(full.items) == list(bare.items) and full.source == bare.source
    full_s = stub.Similar(reco_pb2.SimilarRequest(item_id=item, n=4), timeout=30)
    bare_s = stub.Similar(reco_pb2.SimilarRequest(item_id=item, n=4, omit_jsonld=True), timeout=30)
    assert full_s.jsonld.startswith('{"@context"') and bare_s.jsonld == ""
    assert list(full_s.items) == list(bare_s.items)


@pytest.mark.parametrize("method", ["Recommend", "Similar", "BatchRecommend", "Reload", "GetModelStatus"])
def test_malformed_request_bytes_are_invalid_argument(server: InProcess, method: str) -> None:
    channel = grpc.insecure_channel(server.address)
    server.channels.append(channel)
    path = f"/reco.v1.Recommender/{method}"
    garbage = b"\x0a\xff\xff\xff\xff\xff"  # a length-delimited field longer than the message
    with pytest.raises(grpc.RpcError) as e:
        if method == "BatchRecommend":
            list(channel.unary_stream(path, None, None)(garbage, timeout=30))
        else:
            channel.unary_unary(path, None, None)(garbage, timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (e.value.details() or "").startswith("request: not a valid reco.v1.")


def _rpc_lines(sc: Sidecar, rid: str) -> list[dict[str, Any]]:
    return [e for e in sc.log_events() if e.get("event") == "rpc" and e.get("request_id") == rid]


def _rpcs_total(sc: Sidecar, method: str, code: str) -> float:
    port = next(e for e in sc.log_events() if e.get("event") == "metrics_serving")["port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "reco_rpcs_total" and s.labels == {"method": method, "code": code})


def test_a_cancelled_stream_is_logged_and_counted_as_cancelled(sidecar: Sidecar, users: list[str]) -> None:
    rid = uuid.uuid4().hex
    before = _rpcs_total(sidecar, "BatchRecommend", "CANCELLED")
    ids = [users[i % len(users)] for i in range(200_000)]
    stream = sidecar.stub().BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=ids, n=10),
                                           metadata=[("x-request-id", rid)])
    for _ in range(5):
        next(stream)
    stream.cancel()
    wait_until(lambda: bool(_rpc_lines(sidecar, rid)), WAIT, "the cancelled stream's log line")
    (line,) = _rpc_lines(sidecar, rid)
    assert (line["method"], line["code"]) == ("BatchRecommend", "CANCELLED")
    assert 5 <= line["responses"] < len(ids)
    wait_until(lambda: _rpcs_total(sidecar, "BatchRecommend", "CANCELLED") == before + 1, WAIT, "CANCELLED counted")
    assert _rpcs_total(sidecar, "BatchRecommend", "UNKNOWN") == 0


def test_a_stream_past_its_deadline_is_logged_and_counted_as_deadline_exceeded(
        sidecar: Sidecar, users: list[str]) -> None:
    rid = uuid.uuid4().hex
    before = _rpcs_total(sidecar, "BatchRecommend", "DEADLINE_EXCEEDED")
    ids = [users[i % len(users)] for i in range(400_000)]
    with pytest.raises(grpc.RpcError) as e:
        for _ in sidecar.stub().BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=ids, n=10), timeout=0.5,
                                               metadata=[("x-request-id", rid)]):
            pass
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_until(lambda: bool(_rpc_lines(sidecar, rid)), WAIT, "the timed-out stream's log line")
    (line,) = _rpc_lines(sidecar, rid)
    assert line["code"] == "DEADLINE_EXCEEDED"
    wait_until(lambda: _rpcs_total(sidecar, "BatchRecommend", "DEADLINE_EXCEEDED") == before + 1, WAIT,
               "DEADLINE_EXCEEDED counted")


def _without_metadata(model_dir: pathlib.Path) -> int:
    """A copy of version 1 without item metadata, published as the next version."""
    version = copy_version(model_dir, 1)
    vdir = model_dir / str(version)
    manifest = json.loads((vdir / layout.MANIFEST).read_text())
    del manifest["files"][layout.ITEM_METADATA]
    (vdir / layout.MANIFEST).write_text(json.dumps(manifest))
    (vdir / layout.ITEM_METADATA).unlink()
    return version


def test_a_stream_keeps_its_version_and_its_filter_through_a_reload(demo_copy: pathlib.Path, users: list[str]) -> None:
    """A category filter is valid on version 1 only; a Reload to a version without metadata
    commits while the stream runs. The stream still ends OK, every answer from version 1."""
    v2 = _without_metadata(demo_copy / "demo")
    with running_sidecar(demo_copy, "demo", extra_args=["--version", "1", "--batch-chunk", "16"]) as sc:
        stub = sc.stub()
        ids = [users[i % len(users)] for i in range(20_000)]
        stream = stub.BatchRecommend(reco_pb2.BatchRecommendRequest(
            user_ids=ids, n=3, filter=reco_pb2.Filter(categories=["cat1"])), timeout=120)
        first = [next(stream)]
        replies: list[reco_pb2.ReloadResponse] = []
        reloading = threading.Thread(target=lambda: replies.append(
            stub.Reload(reco_pb2.ReloadRequest(version=str(v2)), timeout=120)))
        reloading.start()
        # the swap has happened while the stream is still open (it is not being read)
        wait_until(lambda: stub.GetModelStatus(
            reco_pb2.GetModelStatusRequest(), timeout=30).version == v2, WAIT, "version 2 serving")
        rest = list(stream)
        reloading.join(120)
        assert replies and replies[0].new_version == v2
        assert {m.version for m in first + rest} == {1}
        assert [m.index for m in first + rest] == list(range(len(ids)))
        with pytest.raises(grpc.RpcError) as e:
            list(stub.BatchRecommend(reco_pb2.BatchRecommendRequest(
                user_ids=users[:2], n=3, filter=reco_pb2.Filter(categories=["cat1"])), timeout=30))
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_idle_reflection_streams_starve_neither_callers_nor_the_health_probe(demo_root: pathlib.Path,
                                                                               users: list[str]) -> None:
    with in_process_sidecar(demo_root, "demo", extra_args=["--max-concurrent-rpcs", "2",
                                                           "--max-side-streams", "4"]) as sc:
        channel = grpc.insecure_channel(sc.address)
        sc.channels.append(channel)
        release = threading.Event()

        def idle() -> Iterator[reflection_pb2.ServerReflectionRequest]:
            release.wait(WAIT)
            return
            yield  # a generator that sends nothing until released

        codes: list[grpc.StatusCode] = []

        def hold() -> None:
            try:
                for _ in reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(idle()):
                    pass
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as e:
                codes.append(e.code())

        threads = [threading.Thread(target=hold) for _ in range(40)]
        for t in threads:
            t.start()
        try:
            # all but the reflection limit's few are refused; those few stay open, idle
            wait_until(lambda: len(codes) >= 36, WAIT, "reflection streams refused")
            assert set(codes) == {grpc.StatusCode.RESOURCE_EXHAUSTED}
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            stub = sc.stub()
            for user in users[:5]:
                assert len(stub.Recommend(reco_pb2.RecommendRequest(user_id=user, n=3), timeout=10).items) == 3
        finally:
            release.set()
            for t in threads:
                t.join(WAIT)
        assert codes.count(grpc.StatusCode.OK) == 4


@pytest.mark.parametrize(("args", "limit"), [([], 16), (["--max-side-streams", "4"], 4)],
                         ids=["documented-default", "flag"])
def test_health_watch_streams_have_their_own_limit_and_check_stays_open(demo_root: pathlib.Path,
                                                                         args: list[str], limit: int) -> None:
    with in_process_sidecar(demo_root, "demo", extra_args=args) as sc:
        channel = grpc.insecure_channel(sc.address)
        sc.channels.append(channel)
        health = health_pb2_grpc.HealthStub(channel)
        watches = [health.Watch(health_pb2.HealthCheckRequest(), timeout=WAIT) for _ in range(limit + 2)]
        try:
            outcomes = []
            for w in watches:
                try:
                    outcomes.append(next(w).status == health_pb2.HealthCheckResponse.SERVING)
                except grpc.RpcError as e:
                    outcomes.append(e.code())
            assert outcomes.count(True) == limit
            assert outcomes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 2
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status \
                == health_pb2.HealthCheckResponse.SERVING
        finally:
            for w in watches:
                w.cancel()


def test_a_cancelled_stream_releases_its_model_so_a_reload_does_not_wait_for_it(demo_copy: pathlib.Path,
                                                                                 users: list[str]) -> None:
    """A stream holds its version until it ends; a cancelled one must end at once, not when
    the garbage collector gets to it, or the Reload's commit waits out its drain timeout."""
    v2 = copy_version(demo_copy / "demo", 1)
    with running_sidecar(demo_copy, "demo", extra_args=["--version", "1", "--batch-chunk", "16",
                                                        "--grace", "600"]) as sc:
        stub = sc.stub()
        ids = [users[i % len(users)] for i in range(200_000)]
        for _ in range(3):
            stream = stub.BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=ids, n=3), timeout=600)
            next(stream)
            stream.cancel()
        # the drain timeout is max(grace, 5) = 600 s: only released leases let this return
        reply = stub.Reload(reco_pb2.ReloadRequest(version=str(v2)), timeout=WAIT)
        assert reply.new_version == v2
        assert not [e for e in sc.log_events() if e.get("event") == "model_drain_timeout"]
