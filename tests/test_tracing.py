"""Traces from a caller through a real sidecar into a real collector (Jaeger), read back from
Jaeger's query API: the caller's client span, the sidecar's server span as its child, the steps
inside it, and the same trace id in the sidecar's log line. And a collector that dies under load
fails no call."""

from __future__ import annotations

import pathlib
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from harness.jaeger import Jaeger, jaeger_binary, running_jaeger
from harness.procs import wait_until
from reco_sidecar.artifact import loader
from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.requires import require
from tests.support.server import Sidecar, running_sidecar
from tests.support.versions import copy_version

pytestmark = pytest.mark.slow

SERVICE = "reco.v1.Recommender"
CALLER = "uro-test"
# The sidecar's batch processor sends every 100 ms here (5 s by default): traces arrive soon.
TRACE_ENV = {"OTEL_BSP_SCHEDULE_DELAY": "100"}


@pytest.fixture(scope="module")
def binary() -> str:
    path = jaeger_binary()
    require(path is not None, "Jaeger (scripts/jaeger.sh)")
    assert path is not None
    return path


@pytest.fixture(scope="module")
def jaeger(binary: str) -> Iterator[Jaeger]:
    with running_jaeger(binary) as j:
        yield j


@pytest.fixture(scope="module")
def sidecar(jaeger: Jaeger, demo_root: pathlib.Path) -> Iterator[Sidecar]:
    with running_sidecar(demo_root, "demo", workers=2, env=TRACE_ENV,
                         extra_args=["--otlp-endpoint", jaeger.otlp_endpoint, "--trace-sample-ratio", "1.0",
                                     "--access-log", "on"]) as s:
        yield s


class Caller:
    """What uro does: its own client span around the call, its context injected as
    `traceparent` metadata. Its spans go to the same collector, each as soon as it ends."""

    def __init__(self, endpoint: str) -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": CALLER}))
        self.provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        self.tracer = self.provider.get_tracer("tests.caller")

    def call(self, method: str, invoke: Any) -> tuple[str, str, Any]:
        """(trace id, client span id, the call's result) of `invoke(metadata)` inside a client span."""
        with self.tracer.start_as_current_span(f"{SERVICE}/{method}", kind=trace.SpanKind.CLIENT) as span:
            carrier: dict[str, str] = {}
            TraceContextTextMapPropagator().inject(carrier)
            request_id = uuid.uuid4().hex
            result = invoke([*carrier.items(), ("x-request-id", request_id)])
            ctx = span.get_span_context()
        return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"), (request_id, result)

    def close(self) -> None:
        self.provider.shutdown()


@pytest.fixture(scope="module")
def caller(jaeger: Jaeger) -> Iterator[Caller]:
    c = Caller(jaeger.otlp_endpoint)
    yield c
    c.close()


@pytest.fixture(scope="module")
def user_id(demo_root: pathlib.Path) -> str:
    return str(loader.open_model(demo_root / "demo" / "1").users.ids[3])


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span["tags"]}


def _parent(span: dict[str, Any]) -> str | None:
    refs = [r for r in span.get("references", []) if r["refType"] == "CHILD_OF"]
    return refs[0]["spanID"] if refs else None


def _trace_when(jaeger: Jaeger, trace_id: str, ok: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    """The trace once `ok` holds for it: the caller and the sidecar's workers export apart."""
    def ready() -> dict[str, Any] | None:
        t = jaeger.trace(trace_id)
        return t if t is not None and ok(t) else None

    found = wait_until(ready, 30, f"trace {trace_id} in Jaeger: {what}")
    assert found is not None
    return found


def _trace_with(jaeger: Jaeger, trace_id: str, names: set[str], *, caller: bool = True) -> dict[str, Any]:
    """The trace once Jaeger holds a sidecar span of each name in `names` (and the caller's
    span, when there is a caller): each process exports its spans in batches of its own."""
    def ok(t: dict[str, Any]) -> bool:
        services = {_service_of(t, s) for s in t["spans"]}
        sidecar = {s["operationName"] for s in t["spans"] if _service_of(t, s) == "reco-sidecar"}
        return names <= sidecar and (not caller or CALLER in services)

    return _trace_when(jaeger, trace_id, ok, f"spans {sorted(names)}")


def _by_name(t: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [s for s in t["spans"] if s["operationName"] == name]


def _service_of(t: dict[str, Any], span: dict[str, Any]) -> str:
    return str(t["processes"][span["processID"]]["serviceName"])


def _server_span(t: dict[str, Any], method: str, client_span_id: str) -> dict[str, Any]:
    (client,) = [s for s in _by_name(t, f"{SERVICE}/{method}") if _service_of(t, s) == CALLER]
    assert client["spanID"] == client_span_id
    (server,) = [s for s in _by_name(t, f"{SERVICE}/{method}") if _service_of(t, s) == "reco-sidecar"]
    assert _parent(server) == client_span_id  # the caller's span is the server span's parent
    tags = _tags(server)
    assert tags["span.kind"] == "server"
    assert (tags["rpc.system"], tags["rpc.service"], tags["rpc.method"]) == ("grpc", SERVICE, method)
    assert tags["rpc.grpc.status_code"] == 0
    assert tags["server.address"] == "127.0.0.1" and tags["network.peer.address"] == "127.0.0.1"
    return server


def _log_line(sidecar: Sidecar, request_id: str) -> dict[str, Any]:
    lines = [e for e in sidecar.log_events() if e.get("event") == "rpc" and e.get("request_id") == request_id]
    assert len(lines) == 1, lines
    return lines[0]


def _events(span: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A span's events (Jaeger's `logs`) by name, each with its fields and time (µs)."""
    out = {}
    for entry in span.get("logs", []):
        fields = {f["key"]: f["value"] for f in entry["fields"]}
        out[str(fields.pop("event"))] = {**fields, "timestamp": entry["timestamp"]}
    return out


def test_recommend_is_a_server_span_under_the_callers_span_with_its_batch_wait_scoring_and_rendering(
        sidecar: Sidecar, jaeger: Jaeger, caller: Caller, user_id: str) -> None:
    stub = sidecar.stub()
    trace_id, client_id, (rid, resp) = caller.call(
        "Recommend", lambda md: stub.Recommend(reco_pb2.RecommendRequest(user_id=user_id, n=5), metadata=md))
    t = _trace_with(jaeger, trace_id, {f"{SERVICE}/Recommend", "score"})
    server = _server_span(t, "Recommend", client_id)
    tags = _tags(server)
    assert (tags["reco.model"], tags["reco.model.version"]) == ("demo", resp.version)
    assert tags["reco.source"] == "model" and tags["reco.items"] == 5 and tags["reco.request_id"] == rid
    (score,) = _by_name(t, "score")
    assert _parent(score) == server["spanID"]
    assert _tags(score)["reco.batch.size"] >= 1
    # the wait ends when the scoring starts; the rendering comes after the scoring, in the call
    events = _events(server)
    assert events["batch.wait"]["timestamp"] == score["startTime"]
    assert events["batch.wait"]["reco.duration_ms"] >= 0
    assert score["startTime"] + score["duration"] <= events["render"]["timestamp"] \
        <= server["startTime"] + server["duration"]
    assert events["render"]["reco.duration_ms"] >= 0
    line = _log_line(sidecar, rid)
    assert (line["trace_id"], line["span_id"]) == (trace_id, server["spanID"])


def test_batch_recommend_has_a_span_per_chunk_each_holding_its_scoring(
        sidecar: Sidecar, jaeger: Jaeger, caller: Caller, demo_root: pathlib.Path) -> None:
    known = loader.open_model(demo_root / "demo" / "1").users.ids
    users = [str(known[i % len(known)]) for i in range(1100)]  # three chunks of --batch-chunk 512
    stub = sidecar.stub()
    trace_id, client_id, (rid, got) = caller.call(
        "BatchRecommend",
        lambda md: list(stub.BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=users, n=3), metadata=md)))
    assert len(got) == len(users)
    t = _trace_with(jaeger, trace_id, {f"{SERVICE}/BatchRecommend", "chunk", "score"})
    server = _server_span(t, "BatchRecommend", client_id)
    assert _tags(server)["reco.users"] == len(users) and _tags(server)["reco.responses"] == len(users)
    # --batch-chunk 512: three chunks, starting at 0, 512 and 1024, each with its scoring inside
    t = _trace_when(jaeger, trace_id, lambda x: len(_by_name(x, "score")) == 3, "three chunk scorings")
    chunks = _by_name(t, "chunk")
    assert sorted(_tags(c)["reco.chunk.first_index"] for c in chunks) == [0, 512, 1024]
    assert all(_parent(c) == server["spanID"] for c in chunks)
    sizes = {_parent(s): _tags(s)["reco.batch.size"] for s in _by_name(t, "score")}
    assert set(sizes) == {c["spanID"] for c in chunks}
    assert sorted(sizes.values()) == [1100 - 1024, 512, 512]
    assert all("render" in _events(c) for c in chunks)
    line = _log_line(sidecar, rid)
    assert (line["trace_id"], line["span_id"]) == (trace_id, server["spanID"])


def test_the_ranking_stage_is_an_event_between_scoring_and_rendering(
        jaeger: Jaeger, caller: Caller, demo_root: pathlib.Path, tmp_path: pathlib.Path, user_id: str) -> None:
    """With a rule set for the model, a Recommend's server span carries a `rerank` event (the
    stage's own time, how many retrievals it asked for and how deep the last was), after its
    scoring and before its rendering; a BatchRecommend chunk carries one for its users."""
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rules]]\nmodel = "demo"\n[rules.diversity]\ncap_field = "creator"\ncap = 2\n')
    known = loader.open_model(demo_root / "demo" / "1").users.ids
    with running_sidecar(demo_root, "demo", workers=1, env=TRACE_ENV,
                         extra_args=["--otlp-endpoint", jaeger.otlp_endpoint, "--trace-sample-ratio", "1.0",
                                     "--rules", str(rules)]) as sc:
        stub = sc.stub()
        trace_id, client_id, _ = caller.call(
            "Recommend", lambda md: stub.Recommend(reco_pb2.RecommendRequest(user_id=user_id, n=5), metadata=md))
        t = _trace_with(jaeger, trace_id, {f"{SERVICE}/Recommend", "score"})
        server = _server_span(t, "Recommend", client_id)
        events = _events(server)
        rerank = events["rerank"]
        assert rerank["reco.rank.retrievals"] >= 1 and rerank["reco.rank.candidates"] >= 5
        assert rerank["reco.duration_ms"] >= 0
        last_score = max(s["startTime"] + s["duration"] for s in _by_name(t, "score"))
        assert last_score <= rerank["timestamp"] <= events["render"]["timestamp"]
        users = [str(known[i % len(known)]) for i in range(600)]  # two chunks of --batch-chunk 512
        trace_id, client_id, (_, got) = caller.call(
            "BatchRecommend",
            lambda md: list(stub.BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=users, n=3), metadata=md)))
        assert len(got) == len(users)
        t = _trace_when(jaeger, trace_id, lambda x: len(_by_name(x, "chunk")) == 2, "two chunks")
        reranked = sorted(_events(c)["rerank"]["reco.rank.users"] for c in _by_name(t, "chunk"))
        assert reranked == [600 - 512, 512]


def test_reload_is_traced_with_its_rollout_and_the_log_line_carries_the_trace(
        sidecar: Sidecar, jaeger: Jaeger, caller: Caller) -> None:
    stub = sidecar.stub()
    trace_id, client_id, (rid, resp) = caller.call(
        "Reload", lambda md: stub.Reload(reco_pb2.ReloadRequest(version="latest"), metadata=md, timeout=60))
    t = _trace_with(jaeger, trace_id, {f"{SERVICE}/Reload", "reload.rollout"})
    server = _server_span(t, "Reload", client_id)
    assert (_tags(server)["reco.model"], _tags(server)["reco.model.version"]) == ("demo", resp.new_version)
    (rollout,) = _by_name(t, "reload.rollout")
    assert _parent(rollout) == server["spanID"]
    line = _log_line(sidecar, rid)
    assert (line["trace_id"], line["span_id"]) == (trace_id, server["spanID"])


def _pid_of(t: dict[str, Any], span: dict[str, Any]) -> int:
    """The process.pid of the worker that exported `span` (its resource)."""
    tags = {tag["key"]: tag["value"] for tag in t["processes"][span["processID"]]["tags"]}
    return int(tags["process.pid"])


def _end(span: dict[str, Any]) -> int:
    return int(span["startTime"]) + int(span["duration"])


def test_a_reload_is_one_trace_across_every_worker_each_preparing_then_committing_in_a_span_of_its_own(
        jaeger: Jaeger, caller: Caller, demo_copy: pathlib.Path) -> None:
    with running_sidecar(demo_copy, "demo", workers=2, env=TRACE_ENV,
                         extra_args=["--otlp-endpoint", jaeger.otlp_endpoint, "--trace-sample-ratio", "1.0"]) as sc:
        new_version = copy_version(demo_copy / "demo", 1)  # published once the sidecar serves version 1
        stub = sc.stub()
        pids = {w.pid for w in stub.GetModelStatus(reco_pb2.GetModelStatusRequest()).workers}
        assert len(pids) == 2
        trace_id, client_id, (_, resp) = caller.call("Reload", lambda md: stub.Reload(
            reco_pb2.ReloadRequest(version=str(new_version)), metadata=md, timeout=120))
        assert (resp.old_version, resp.new_version, resp.workers) == (1, new_version, 2)

        def every_worker(t: dict[str, Any]) -> bool:
            return all({_pid_of(t, s) for s in _by_name(t, name)} == pids
                       for name in ("reload.prepare", "reload.commit"))

        _trace_with(jaeger, trace_id, {f"{SERVICE}/Reload", "reload.rollout"})
        t = _trace_when(jaeger, trace_id, every_worker, f"a prepare and a commit span from each of {sorted(pids)}")
        server = _server_span(t, "Reload", client_id)
        (rollout,) = _by_name(t, "reload.rollout")
        assert _parent(rollout) == server["spanID"]
        prepares, commits = _by_name(t, "reload.prepare"), _by_name(t, "reload.commit")
        assert len(prepares) == len(commits) == 2  # one each per worker, exported by that worker
        for span in prepares + commits:
            assert _parent(span) == rollout["spanID"] and _service_of(t, span) == "reco-sidecar"
            tags = _tags(span)
            assert (tags["reco.model"], tags["reco.model.version"]) == ("demo", new_version)
            assert "error" not in tags and "otel.status_code" not in tags
            assert rollout["startTime"] <= span["startTime"] and _end(span) <= _end(rollout)
        assert len({_tags(s)["reco.reload.txn"] for s in prepares + commits}) == 1  # one transaction
        # all or nothing: no worker commits before every worker has prepared
        assert max(_end(s) for s in prepares) <= min(s["startTime"] for s in commits)
        # each worker's lines written while it loaded the version carry its prepare span
        loaded = [e for e in sc.log_events() if e.get("event") == "model_loaded" and e.get("version") == new_version]
        assert sorted((e["trace_id"], e["span_id"]) for e in loaded) == sorted((trace_id, s["spanID"])
                                                                             for s in prepares)


EXPERIMENTS = """
[[experiments]]
name = "trial"
salt = "{salt}"
share = 1.0
arms = [{{ name = "a", model = "demo", weight = 1 }}, {{ name = "b", model = "demo", weight = 1 }}]
"""


@dataclass(frozen=True)
class FileRollout:
    """A file the sidecar rolls out to every worker in two phases, and the call that asks."""

    flag: str
    first: str
    second: str
    method: str
    call: Callable[[Any, Any], Any]
    # each worker's spans, and the log line each writes inside the span (None: none)
    lines: dict[str, str | None]


FILE_ROLLOUTS = {
    "rules": FileRollout(
        "--rules", '[[rules]]\nmodel = "demo"\n[rules.diversity]\ncap_field = "creator"\ncap = 2\n',
        'hide = ["nothing-here"]\n', "ReloadRules",
        lambda stub, md: stub.ReloadRules(reco_pb2.RankingReloadRulesRequest(), metadata=md, timeout=60),
        {"rules.prepare": "rules_prepared", "rules.commit": "rules_applied"}),
    "experiments": FileRollout(
        "--experiments", EXPERIMENTS.format(salt="one"), EXPERIMENTS.format(salt="two"), "ReloadExperiments",
        lambda stub, md: stub.ReloadExperiments(reco_pb2.ReloadExperimentsRequest(), metadata=md, timeout=60),
        {"experiments.prepare": None, "experiments.commit": "experiments_applied"}),
}


@pytest.mark.parametrize("kind", sorted(FILE_ROLLOUTS))
def test_a_file_rollout_is_one_trace_with_each_workers_prepare_and_commit_a_span_under_the_call(
        kind: str, jaeger: Jaeger, caller: Caller, demo_root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    rollout = FILE_ROLLOUTS[kind]
    path = tmp_path / f"{kind}.toml"
    path.write_text(rollout.first)
    with running_sidecar(demo_root, "demo", workers=2, env=TRACE_ENV,
                         extra_args=["--otlp-endpoint", jaeger.otlp_endpoint, "--trace-sample-ratio", "1.0",
                                     rollout.flag, str(path)]) as sc:
        stub = sc.stub()
        pids = {w.pid for w in stub.GetModelStatus(reco_pb2.GetModelStatusRequest()).workers}
        assert len(pids) == 2
        path.write_text(rollout.second)
        trace_id, client_id, (_, resp) = caller.call(rollout.method, lambda md: rollout.call(stub, md))
        assert resp.workers == 2
        prepare, commit = rollout.lines

        def every_worker(t: dict[str, Any]) -> bool:
            return CALLER in {_service_of(t, s) for s in t["spans"]} and all(
                {_pid_of(t, s) for s in _by_name(t, name)} == pids for name in rollout.lines)

        t = _trace_when(jaeger, trace_id, every_worker, f"{sorted(rollout.lines)} from each of {sorted(pids)}")
        server = _server_span(t, rollout.method, client_id)
        prepares, commits = _by_name(t, prepare), _by_name(t, commit)
        assert len(prepares) == len(commits) == 2
        for span in prepares + commits:
            assert _parent(span) == server["spanID"]
            assert _tags(span)[f"reco.{kind}.generation"] == resp.generation
            # (each worker answers from inside its span: its end may follow the call's)
            assert server["startTime"] <= span["startTime"]
        for pid in pids:  # each worker staged the file before it served it
            (prepared,) = [s for s in prepares if _pid_of(t, s) == pid]
            (committed,) = [s for s in commits if _pid_of(t, s) == pid]
            assert _end(prepared) <= committed["startTime"]
        # each worker's lines carry the span they were written in
        for name, event in rollout.lines.items():
            if event is None:
                continue
            lines = [e for e in sc.log_events() if e.get("event") == event and e.get("generation") == resp.generation]
            assert sorted((e["trace_id"], e["span_id"]) for e in lines) == sorted((trace_id, s["spanID"])
                                                                                for s in _by_name(t, name))


def test_a_refused_call_is_an_error_free_span_with_its_status_code_and_the_failure_line_carries_it(
        sidecar: Sidecar, jaeger: Jaeger, caller: Caller) -> None:
    stub = sidecar.stub()

    def invoke(md: Any) -> grpc.StatusCode:
        try:
            stub.Recommend(reco_pb2.RecommendRequest(user_id="x", n=0), metadata=md)
        except grpc.RpcError as e:
            return e.code()
        raise AssertionError("n=0 must be refused")

    trace_id, client_id, (rid, code) = caller.call("Recommend", invoke)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    t = _trace_with(jaeger, trace_id, {f"{SERVICE}/Recommend"})
    (server,) = [s for s in _by_name(t, f"{SERVICE}/Recommend") if _service_of(t, s) == "reco-sidecar"]
    assert _parent(server) == client_id
    tags = _tags(server)
    # a client's mistake is not the server's error (OpenTelemetry's gRPC server conventions)
    assert tags["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "error" not in tags and "otel.status_code" not in tags
    line = _log_line(sidecar, rid)
    assert line["code"] == "INVALID_ARGUMENT" and line["trace_id"] == trace_id


def test_a_call_without_traceparent_starts_its_own_trace_and_its_line_names_it(
        sidecar: Sidecar, jaeger: Jaeger, user_id: str) -> None:
    rid = uuid.uuid4().hex
    sidecar.stub().Recommend(reco_pb2.RecommendRequest(user_id=user_id, n=3), metadata=[("x-request-id", rid)])
    line = _log_line(sidecar, rid)
    t = _trace_with(jaeger, line["trace_id"], {f"{SERVICE}/Recommend", "score"}, caller=False)
    (server,) = _by_name(t, f"{SERVICE}/Recommend")
    assert server["spanID"] == line["span_id"] and _parent(server) is None


def test_killing_the_collector_mid_load_fails_no_call(binary: str, demo_root: pathlib.Path, user_id: str) -> None:
    with running_jaeger(binary) as jaeger, \
            running_sidecar(demo_root, "demo", workers=2, env=TRACE_ENV,
                            extra_args=["--otlp-endpoint", jaeger.otlp_endpoint,
                                        "--trace-sample-ratio", "1.0"]) as sc:
        stub = sc.stub()
        done = {"before": 0, "after": 0}
        failures: list[str] = []
        killed = threading.Event()
        lock = threading.Lock()

        def load() -> None:
            while True:
                with lock:
                    if done["after"] >= 600:
                        return
                try:
                    stub.Recommend(reco_pb2.RecommendRequest(user_id=user_id, n=5), timeout=10)
                except grpc.RpcError as e:
                    failures.append(f"{e.code()}: {e.details()}")
                with lock:
                    done["after" if killed.is_set() else "before"] += 1

        threads = [threading.Thread(target=load) for _ in range(8)]
        for th in threads:
            th.start()
        try:
            # spans of this load reached the collector before it dies
            wait_until(lambda: done["before"] >= 200, 60, "200 calls before the kill")
            assert jaeger.proc is not None
            jaeger.stop()
            killed.set()
        finally:
            for th in threads:
                th.join(120)
        assert not any(th.is_alive() for th in threads)
        assert failures == []
        assert done["after"] >= 600
        # the exporter's complaint is a JSON log line, not bare text on stderr
        wait_until(lambda: any(e.get("event") == "tracing_sdk" for e in sc.log_events()), 60,
                   "the exporter's failure logged")
        assert stub.Recommend(reco_pb2.RecommendRequest(user_id=user_id, n=5), timeout=10).items


def test_sampling_follows_the_caller_and_the_ratio_applies_to_calls_without_one(
        jaeger: Jaeger, caller: Caller, demo_root: pathlib.Path, user_id: str) -> None:
    args = ["--otlp-endpoint", jaeger.otlp_endpoint, "--trace-sample-ratio", "0", "--access-log", "on"]
    with running_sidecar(demo_root, "demo", workers=1, env=TRACE_ENV, extra_args=args) as sc:
        stub = sc.stub(sc.worker_addresses[0])  # one worker: its spans leave in the order they end
        request = reco_pb2.RecommendRequest(user_id=user_id, n=3)
        # no traceparent: a root call, sampled at ratio 0, so never exported
        root_rid = uuid.uuid4().hex
        stub.Recommend(request, metadata=[("x-request-id", root_rid)])
        # the caller did not sample: neither does the sidecar
        unsampled = "00-" + uuid.uuid4().hex + "-" + uuid.uuid4().hex[:16] + "-00"
        stub.Recommend(request, metadata=[("traceparent", unsampled)])
        # the caller sampled: so does the sidecar, whatever its ratio
        trace_id, client_id, _ = caller.call("Recommend", lambda md: stub.Recommend(request, metadata=md))
        t = _trace_with(jaeger, trace_id, {f"{SERVICE}/Recommend", "score"})
        _server_span(t, "Recommend", client_id)
        # exported after the two calls before it, had they been sampled
        root_line = _log_line(sc, root_rid)
        assert jaeger.trace(root_line["trace_id"]) is None
        assert jaeger.trace(unsampled.split("-")[1]) is None
