"""The one /metrics endpoint of a real sidecar sums what every worker recorded."""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.procs import wait_until
from reco_sidecar.artifact import loader
from reco_sidecar.common.exit_codes import ExitCode
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.serving import metrics
from tests.support.server import Sidecar, command, running_sidecar, stop_tree
from tests.support.versions import copy_version

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
WAIT = 30.0  # a generous bound for a state to be reached, never a timing assertion


def metrics_event(sc: Sidecar) -> dict[str, Any]:
    return next(e for e in sc.log_events() if e.get("event") == "metrics_serving")


def scrape(sc: Sidecar) -> Samples:
    port = metrics_event(sc)["port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def wait_for(sc: Sidecar, ok: Callable[[Samples], bool]) -> Samples:
    """The first scrape for which `ok` holds (the workers flush their counts about once a second)."""

    def scraped() -> tuple[Samples] | None:
        samples = scrape(sc)
        return (samples,) if ok(samples) else None

    return wait_until(scraped, WAIT, "the metrics to show what the test did")[0]


@pytest.fixture(scope="module")
def ids(demo_root: pathlib.Path) -> tuple[list[str], list[str]]:
    m = loader.open_model(demo_root / "demo" / "1", )
    return list(m.users.ids), list(m.items.ids)


def test_counts_from_both_workers_are_summed(demo_root: pathlib.Path, ids: tuple[list[str], list[str]]) -> None:
    users, items = ids
    with running_sidecar(demo_root, "demo", workers=2, extra_args=["--metrics-port", "0"]) as sc:
        stubs = [sc.stub(a) for a in sc.worker_addresses]
        pids = [s.GetModelStatus(reco_pb2.GetModelStatusRequest()).worker.pid for s in stubs]
        assert len(set(pids)) == 2
        known = {0: 3, 1: 5}
        unknown = {0: 2, 1: 1}
        for w, stub in enumerate(stubs):
            for i in range(known[w]):
                assert stub.Recommend(reco_pb2.RecommendRequest(user_id=users[i], n=5)).source \
                    == reco_pb2.SOURCE_MODEL
            for i in range(unknown[w]):
                assert stub.Recommend(reco_pb2.RecommendRequest(user_id=f"stranger-{i}", n=5)).source \
                    == reco_pb2.SOURCE_POPULAR
        stubs[1].Similar(reco_pb2.SimilarRequest(item_id=items[0], n=3))
        batch = [users[0], "stranger-x", users[1]]
        assert len(list(stubs[0].BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=batch, n=2)))) == 3
        with pytest.raises(grpc.RpcError):
            stubs[1].Recommend(reco_pb2.RecommendRequest(user_id="x", n=0))
        recommends = sum(known.values()) + sum(unknown.values())
        calls = 2 + recommends + 1 + 1 + 1
        # workers hand their counts to the files about once a second; the batch counts were once
        # seen to reach the files a flush after the call counts, so the wait is for both
        samples = wait_for(sc, lambda s: sum(series(s, "reco_rpcs_total").values()) == calls
                           and sum(series(s, "reco_batch_size_sum").values()) == sum(known.values()))
        version = series(samples, "reco_model_version")
    assert value(samples, "reco_rpcs_total", method="Recommend", code="OK") == recommends
    assert value(samples, "reco_rpc_duration_seconds_count", method="Recommend", code="OK") == recommends
    assert value(samples, "reco_rpc_duration_seconds_bucket", method="Recommend", code="OK", le="+Inf") \
        == recommends
    assert value(samples, "reco_rpc_duration_seconds_sum", method="Recommend", code="OK") > 0
    assert value(samples, "reco_rpcs_total", method="Recommend", code="INVALID_ARGUMENT") == 1
    assert value(samples, "reco_rpcs_total", method="Similar", code="OK") == 1
    assert value(samples, "reco_rpcs_total", method="BatchRecommend", code="OK") == 1
    assert value(samples, "reco_rpcs_total", method="GetModelStatus", code="OK") == 2
    assert value(samples, "reco_responses_total", method="Recommend", source="model") == sum(known.values())
    assert value(samples, "reco_responses_total", method="Recommend", source="popular") == sum(unknown.values())
    assert value(samples, "reco_responses_total", method="Similar", source="ann") == 1
    assert value(samples, "reco_responses_total", method="BatchRecommend", source="model") == 2
    assert value(samples, "reco_responses_total", method="BatchRecommend", source="popular") == 1
    # Every known-user Recommend went through the dynamic batcher, alone or with others.
    assert value(samples, "reco_batch_size_sum") == sum(known.values())
    assert 1 <= value(samples, "reco_batch_size_count") <= sum(known.values())
    assert version == {frozenset({("model", "demo"), ("pid", str(p))}): 1.0 for p in pids}
    model = loader.open_model(demo_root / "demo" / "1", )
    assert value(samples, "reco_model_bytes", model="demo") == metrics.model_bytes(model) > 0


def test_reloads_are_counted_timed_and_every_worker_reports_the_new_version(demo_copy: pathlib.Path) -> None:
    v2 = copy_version(demo_copy / "demo", 1)
    args = ["--metrics-port", "0", "--version", "1"]
    with running_sidecar(demo_copy, "demo", workers=2, extra_args=args) as sc:
        stub = sc.stub()
        assert stub.Reload(reco_pb2.ReloadRequest(version=str(v2))).new_version == v2
        with pytest.raises(grpc.RpcError):
            stub.Reload(reco_pb2.ReloadRequest(version="99"))
        samples = wait_for(sc, lambda s: set(series(s, "reco_model_version").values()) == {float(v2)}
                           and sum(series(s, "reco_rpcs_total").values()) == 2)
    assert value(samples, "reco_reloads_total", outcome="ok") == 1
    assert value(samples, "reco_reloads_total", outcome="NOT_FOUND") == 1
    assert value(samples, "reco_reload_duration_seconds_count") == 1
    assert value(samples, "reco_reload_duration_seconds_sum") > 0
    assert value(samples, "reco_rpcs_total", method="Reload", code="OK") == 1
    assert value(samples, "reco_rpcs_total", method="Reload", code="NOT_FOUND") == 1
    versions = series(samples, "reco_model_version")
    assert len(versions) == 2 and set(versions.values()) == {float(v2)}


def test_a_dead_workers_gauges_go_and_its_counts_stay(demo_root: pathlib.Path) -> None:
    with running_sidecar(demo_root, "demo", workers=2, extra_args=["--metrics-port", "0"]) as sc:
        stubs = [sc.stub(a) for a in sc.worker_addresses]
        victim = stubs[0].GetModelStatus(reco_pb2.GetModelStatusRequest()).worker.pid
        for _ in range(4):
            stubs[0].GetModelStatus(reco_pb2.GetModelStatusRequest())
        before = wait_for(sc, lambda s: value(s, "reco_rpcs_total", method="GetModelStatus", code="OK") == 5)
        assert value(before, "reco_rpcs_total", method="GetModelStatus", code="OK") == 5
        os.kill(victim, signal.SIGKILL)

        def restarted(s: Samples) -> bool:
            pids = {dict(labels)["pid"] for labels in series(s, "reco_model_version")}
            return len(pids) == 2 and str(victim) not in pids

        after = wait_for(sc, restarted)
    assert restarted(after)
    assert value(after, "reco_worker_exits_total") == 1
    assert value(after, "reco_rpcs_total", method="GetModelStatus", code="OK") == 5


def test_the_metrics_directory_is_private_and_removed_at_exit(demo_root: pathlib.Path) -> None:
    with running_sidecar(demo_root, "demo", extra_args=["--metrics-port", "0"]) as sc:
        sc.stub().GetModelStatus(reco_pb2.GetModelStatusRequest())
        directory = pathlib.Path(metrics_event(sc)["directory"])
        assert any(directory.glob("counter_*.db"))
        assert oct(directory.stat().st_mode & 0o777) == oct(0o700)
        os.kill(sc.proc.pid, signal.SIGTERM)
        assert sc.proc.wait(30) == 0
    assert not directory.exists()


def test_without_a_metrics_port_nothing_is_served_or_written(demo_root: pathlib.Path,
                                                            tmp_path: pathlib.Path) -> None:
    # A directory inherited from the environment must not collect the sidecar's values.
    with running_sidecar(demo_root, "demo", env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}) as sc:
        sc.stub().GetModelStatus(reco_pb2.GetModelStatusRequest())
        assert not [e for e in sc.log_events() if e.get("event") == "metrics_serving"]
    assert list(tmp_path.iterdir()) == []


def test_a_taken_metrics_port_is_exit_code_3(demo_root: pathlib.Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.Popen(command(demo_root, "demo", 1, ["--metrics-port", str(port)]),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            _, err = proc.communicate(timeout=60)
        finally:
            stop_tree(proc)
    assert proc.returncode == ExitCode.PORT_IN_USE
    assert f"metrics port 127.0.0.1:{port} is already in use" in err.decode()
