"""The Grafana dashboard's queries and the alert rules' expressions, run by a real Prometheus
(Debian's) scraping a live sidecar: every query is one Prometheus accepts, and every metric it
names is one the sidecar exports."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import signal
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import yaml

from harness.paths import ROOT
from harness.procs import wait_until
from harness.prometheus import Prometheus, prometheus_binary, running_prometheus
from reco_sidecar.artifact import loader
from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.models import accept_feedback
from tests.support.requires import require
from tests.support.server import running_sidecar
from tests.support.versions import copy_version

pytestmark = pytest.mark.slow

DASHBOARD = ROOT / "deploy" / "grafana" / "reco-sidecar.json"
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
METRIC = re.compile(r"\b(reco_[a-z_]+)\b")
# Grafana's variables as a query sees them with "All" chosen and a short time range.
GRAFANA_VARIABLES = {"$job": ".*", "$instance": ".*", "$__rate_interval": "1m", "$__range": "1h"}
# Exported only when their feature is in use (a model store, shadow arms); the rules name them,
# the dashboard does not, and the operations guide lists them (tests/test_alert_rules.py).
FEATURE_METRICS = {"reco_store_follower_up", "reco_store_error", "reco_shadow_dropped_total"}


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL with Grafana's variables filled in) for every target."""
    out = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(name, value)
            out.append((panel["title"], expr))
    return out


def rule_queries() -> list[tuple[str, str]]:
    return [(r["alert"], r["expr"]) for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, demo_root: pathlib.Path) -> Iterator[Prometheus]:
    binary = prometheus_binary()
    require(binary is not None, "prometheus (Debian's prometheus package)")
    assert binary is not None
    root = tmp_path_factory.mktemp("dashboard")
    (root / "demo").mkdir()
    shutil.copytree(demo_root / "demo" / "1", root / "demo" / "1")
    accept_feedback(root / "demo" / "1")  # online learning on: its series are on the dashboard
    v2 = copy_version(root / "demo", 1)
    model = loader.open_model(root / "demo" / "1")
    with running_sidecar(root, "demo", workers=2, extra_args=["--metrics-port", "0", "--version", "1",
                                                              "--online-dir", str(root / "online")]) as sc:
        stub = sc.stub()

        def serving_pids() -> set[int]:
            try:
                return {w.pid for w in stub.GetModelStatus(reco_pb2.GetModelStatusRequest()).workers}
            except grpc.RpcError:  # a connection to the killed worker, before the channel notices
                return set()

        # A worker's death first: a worker counts its calls in memory for up to a second, and a
        # SIGKILL loses what it had not written yet.
        victim = min(wait_until(serving_pids, 30, "the workers' pids"))
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: (pids := serving_pids()) and victim not in pids and len(pids) == 2, 60,
                   "the killed worker replaced")
        port = next(e for e in sc.log_events() if e.get("event") == "metrics_serving")["port"]
        with running_prometheus(binary, f"127.0.0.1:{port}") as prom:
            # Traffic that makes every series the dashboard shows: answers from the model and the
            # fallback, a refused call, a stream, a reload and a refused one.
            for user in [*model.users.ids[:20], "nobody-1", "nobody-2"]:
                stub.Recommend(reco_pb2.RecommendRequest(user_id=str(user), n=5))
            stub.Similar(reco_pb2.SimilarRequest(item_id=str(model.items.ids[0]), n=5))
            list(stub.BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=[str(u) for u in model.users.ids[:5]],
                                                                    n=3)))
            with pytest.raises(grpc.RpcError):
                stub.Recommend(reco_pb2.RecommendRequest(user_id="x", n=0))
            events = [reco_pb2.FeedbackEvent(event_id=f"d-{k}", user_id=str(model.users.ids[k]),
                                             item_id=str(model.items.ids[k]), type="click") for k in range(3)]
            assert stub.Feedback(reco_pb2.FeedbackRequest(events=events), timeout=30).accepted == 3
            assert stub.Feedback(reco_pb2.FeedbackRequest(events=events[:1]), timeout=30).duplicates == 1
            assert stub.Reload(reco_pb2.ReloadRequest(version=str(v2)), timeout=60).new_version == v2
            with pytest.raises(grpc.RpcError):
                stub.Reload(reco_pb2.ReloadRequest(version="99"), timeout=60)
            # every call scraped, and two scrapes at least after it, so rate() has its samples
            wait_until(lambda: len(prom.query('count_over_time(reco_rpcs_total{job="reco",'
                                              'method=~"Similar|BatchRecommend|Reload|Feedback"}[1m]) >= 2')) == 5,
                       60, "the calls in two scrapes")
            yield prom


def names_in(expr: str) -> set[str]:
    return set(METRIC.findall(expr))


def test_every_dashboard_query_runs_on_prometheus_and_names_only_exported_metrics(prometheus: Prometheus) -> None:
    exported = prometheus.names()
    queries = dashboard_queries()
    assert len(queries) >= 15
    for title, expr in queries:
        prometheus.query(expr)  # raises with Prometheus's own error for a query it refuses
        missing = names_in(expr) - exported
        assert not missing, f"{title}: {sorted(missing)} not exported by the sidecar"


def test_the_dashboard_shows_the_live_sidecars_calls_latency_and_models(prometheus: Prometheus) -> None:
    by_title: dict[str, list[dict[str, Any]]] = {}
    for title, expr in dashboard_queries():
        by_title.setdefault(title, []).extend(prometheus.query(expr))
    methods = {r["metric"]["method"] for r in by_title["Calls per second by method"]}
    assert {"Recommend", "Similar", "BatchRecommend", "Reload"} <= methods
    assert {(r["metric"]["method"], r["metric"]["code"])
            for r in by_title["Calls that did not end OK, by method and code"]} >= {
        ("Recommend", "INVALID_ARGUMENT"), ("Reload", "NOT_FOUND")}
    assert by_title["Latency p50 / p95 / p99 by method"]
    assert {r["metric"]["source"] for r in by_title["Answers by source (popular = fallback for unknown users)"]} \
        >= {"model", "popular"}
    assert {r["metric"]["outcome"] for r in by_title["Reloads by outcome"]} == {"ok", "NOT_FOUND"}
    assert len(by_title["Model version per worker"]) == 2
    # the exit happened before the first scrape: the panel's increase() has its series, at 0
    assert by_title["Worker exits and heartbeat kills (alert: > 3 exits in 10 min)"]
    assert [float(r["value"][1]) for r in prometheus.query('reco_worker_exits_total{job="reco"}')] == [1.0]
    feedback = by_title["Feedback: apply time p95 (alert: > 100 ms) and events per second"]
    assert {r["metric"].get("outcome") for r in feedback} >= {"accepted", "duplicate"}
    events = {r["metric"]["outcome"]: float(r["value"][1])
              for r in prometheus.query('reco_feedback_events_total{job="reco"}')}
    assert events == {"accepted": 3.0, "duplicate": 1.0}
    counted = prometheus.query('reco_feedback_apply_seconds_count{job="reco"}')
    assert [float(r["value"][1]) for r in counted] == [2.0]


def test_every_alert_expression_runs_on_prometheus_and_names_exported_or_feature_metrics(
        prometheus: Prometheus) -> None:
    exported = prometheus.names()
    for alert, expr in rule_queries():
        prometheus.query(expr)
        missing = names_in(expr) - exported - FEATURE_METRICS
        assert not missing, f"{alert}: {sorted(missing)} not exported by the sidecar"
