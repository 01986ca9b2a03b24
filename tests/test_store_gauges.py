"""The store follower's gauges on /metrics, which the RecoStoreFollowerDown and RecoStoreFailing
alerts read: the follower up and the store failing while it cannot be reached, before and
after the follower is killed and restarted."""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from harness.procs import wait_until
from harness.seaweedfs import free_ports
from tests.support.server import Sidecar, running_sidecar


def gauges(sc: Sidecar) -> dict[str, float]:
    port = next(e for e in sc.log_events() if e.get("event") == "metrics_serving")["port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples
            if s.name in ("reco_store_follower_up", "reco_store_error")}


def test_a_store_nobody_answers_at_sets_the_error_gauge_and_a_dead_follower_the_up_gauge(
        demo_root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(demo_root, cache)
    (down,) = free_ports(1)  # the store's endpoint: nothing listens there
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test-secret", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true", "RECO_S3_ENDPOINT_URL": f"http://127.0.0.1:{down}"}
    args = ["--model-store", "s3://bucket/x", "--watch", "0.2", "--metrics-port", "0"]
    with running_sidecar(cache, "demo", env=env, extra_args=args) as sc:
        # serving from the cache, the store unreachable
        wait_until(lambda: gauges(sc) == {"reco_store_follower_up": 1.0, "reco_store_error": 1.0}, 60,
                   "the follower up and the store failing")
        (follower,) = [int(e["follower_pid"]) for e in sc.log_events() if e.get("event") == "store_follower_start"]
        os.kill(follower, signal.SIGKILL)
        # Down (0) for the second before the supervisor restarts it: too short a window to catch
        # by scraping on a loaded machine; the restarted follower is up again.
        wait_until(lambda: len([e for e in sc.log_events() if e.get("event") == "store_follower_start"]) == 2,
                   60, "the follower restarted")
        wait_until(lambda: gauges(sc) == {"reco_store_follower_up": 1.0, "reco_store_error": 1.0}, 60,
                   "the restarted follower up, the store still failing")
