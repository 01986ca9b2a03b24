"""The batcher of a real sidecar, seen from outside through /metrics: a lone caller's calls
are scored without any wait for company, and concurrent callers still share products.
Waits are counted (reco_batch_waits_total), never timed."""

from __future__ import annotations

import pathlib
import time

from reco_sidecar.artifact import loader
from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.load import Load
from tests.support.server import running_sidecar
from tests.test_metrics import WAIT, Samples, scrape, value, wait_for

CALLS = 200


def known_users(demo_root: pathlib.Path) -> list[str]:
    return list(loader.open_model(demo_root / "demo" / "1").users.ids)


def batches(samples: Samples) -> float:
    return value(samples, "reco_batch_size_count")


def alone(samples: Samples) -> float:
    """Batches of one query (the histogram's le=1 bucket is cumulative)."""
    return value(samples, "reco_batch_size_bucket", le="1.0")


def test_a_lone_caller_is_scored_without_waiting(demo_root: pathlib.Path) -> None:
    """One caller, each call sent when the last is answered, as fast as the client can: no
    other call is ever in flight, so no batch waits (the earlier timer waited whenever calls
    came faster than its 3 ms limit, which a closed loop does on every call)."""
    users = known_users(demo_root)
    with running_sidecar(demo_root, "demo", workers=1, extra_args=["--metrics-port", "0"]) as sc:
        stub = sc.stub()
        for i in range(CALLS):
            response = stub.Recommend(reco_pb2.RecommendRequest(user_id=users[i % len(users)], n=5))
            assert response.source == reco_pb2.SOURCE_MODEL
        samples = wait_for(sc, lambda s: value(s, "reco_batch_size_sum") == CALLS)
    assert value(samples, "reco_batch_size_sum") == CALLS
    assert value(samples, "reco_batch_waits_total") == 0
    # each call was a batch of its own: nothing else was there to share it
    assert batches(samples) == alone(samples) == CALLS


def test_concurrent_callers_still_share_products(demo_root: pathlib.Path) -> None:
    """Sixteen closed-loop callers on one worker: the calls that queue while a batch is
    scored form the next batch, with no timer. Load runs until a batch of more than one
    query has been counted (a generous bound), then every answered call is accounted for."""
    users = known_users(demo_root)
    with running_sidecar(demo_root, "demo", workers=1, extra_args=["--metrics-port", "0"]) as sc:
        stubs = [sc.stub() for _ in range(4)]

        def call(i: int) -> int:
            stubs[i % len(stubs)].Recommend(reco_pb2.RecommendRequest(user_id=users[i % len(users)], n=5),
                                            timeout=30)
            return 1

        shared = False
        with Load(call, threads=16) as load:
            deadline = time.monotonic() + WAIT
            while not shared and time.monotonic() < deadline:
                samples = scrape(sc)
                shared = batches(samples) > alone(samples)
                time.sleep(0.1)
        assert load.result.failures == 0, load.result.errors[:5]
        assert shared, "no batch of more than one query formed under concurrent load"
        samples = wait_for(sc, lambda s: value(s, "reco_batch_size_sum") == load.result.ok)
    assert value(samples, "reco_batch_size_sum") == load.result.ok
    assert batches(samples) < load.result.ok
