"""The Recommender's status codes and messages, with small limits: what one worker answers
through its real gRPC server in this process; Reload, a transaction the supervisor runs
across the workers, through a real process tree."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message

from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.server import InProcess, Sidecar, in_process_sidecar, running_sidecar
from tests.support.versions import copy_version, flip_byte

LIMITS = ["--max-n", "50", "--max-offset", "100", "--max-ids", "10", "--max-batch-users", "100",
          "--batch-chunk", "16", "--jsonld-item-iri", "urn:item:{id}"]


Harness = tuple[Sidecar, pathlib.Path]


@pytest.fixture(scope="module")
def server(demo_root: pathlib.Path) -> Iterator[InProcess]:
    with in_process_sidecar(demo_root, "demo", extra_args=["--version", "1", *LIMITS]) as s:
        yield s


@pytest.fixture
def sidecar(demo_copy: pathlib.Path) -> Iterator[Harness]:
    with running_sidecar(demo_copy, "demo", extra_args=["--version", "1", *LIMITS]) as sc:
        yield sc, demo_copy


def code_of(call: Any, request: Message) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as e:
        result = call(request, timeout=30)
        if not isinstance(result, reco_pb2.RecommendResponse | reco_pb2.ReloadResponse):
            list(result)
    return e.value.code(), e.value.details() or ""


def test_recommend_ok(server: InProcess) -> None:
    resp = server.stub().Recommend(reco_pb2.RecommendRequest(user_id="u0000001", n=4), timeout=30)
    assert len(resp.items) == 4 and resp.version == 1
    assert resp.jsonld.startswith('{"@context"') and "urn:item:" in resp.jsonld


INVALID, NOT_FOUND, EXHAUSTED = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                                 grpc.StatusCode.RESOURCE_EXHAUSTED)

# Every plain bad request and what it gets: the code, and a message that starts with the field.
# Scenario tests (test_requests, test_serve, test_hostile_input) send bad input too, but assert
# only what their scenario is about; the codes and messages are asserted here, once each.
BAD_REQUESTS: list[tuple[str, Message, grpc.StatusCode, str]] = [
    ("Recommend", reco_pb2.RecommendRequest(user_id="", n=5), INVALID, "user_id:"),
    ("Recommend", reco_pb2.RecommendRequest(user_id="x" * 600, n=5), INVALID, "user_id:"),
    ("Recommend", reco_pb2.RecommendRequest(user_id="u0000001", n=0), INVALID, "n:"),
    ("Recommend", reco_pb2.RecommendRequest(user_id="u0000001", n=-3), INVALID, "n:"),
    ("Recommend", reco_pb2.RecommendRequest(user_id="u0000001", n=51), INVALID, "n: must be between 1 and 50"),
    ("Recommend", reco_pb2.RecommendRequest(user_id="u0000001", n=201), INVALID, "n:"),
    ("Recommend", reco_pb2.RecommendRequest(user_id="u0000001", n=5, offset=-1), INVALID, "offset:"),
    ("Recommend", reco_pb2.RecommendRequest(user_id="u0000001", n=5, offset=101), INVALID, "offset:"),
    ("Recommend", reco_pb2.RecommendRequest(user_id="u0000001", n=5, recent_item_ids=["a"] * 11), EXHAUSTED,
     "recent_item_ids: 11 ids, at most 10"),
    ("Recommend", reco_pb2.RecommendRequest(user_id="u0000001", n=5,
                                            filter=reco_pb2.Filter(exclude_item_ids=["i"] * 10_001)),
     EXHAUSTED, "filter.exclude_item_ids:"),
    ("Recommend", reco_pb2.RecommendRequest(user_id="zz", n=5, disable_fallback=True), NOT_FOUND,
     "user_id: unknown user 'zz'"),
    ("Recommend", reco_pb2.RecommendRequest(model="other", user_id="u0000001", n=5), NOT_FOUND, "model:"),
    ("Similar", reco_pb2.SimilarRequest(item_id="", n=5), INVALID, "item_id:"),
    ("Similar", reco_pb2.SimilarRequest(item_id="nope", n=5), NOT_FOUND, "item_id:"),
    ("Similar", reco_pb2.SimilarRequest(item_id="i0000001", n=0), INVALID, "n:"),
    ("BatchRecommend", reco_pb2.BatchRecommendRequest(user_ids=[], n=5), INVALID, "user_ids:"),
    ("BatchRecommend", reco_pb2.BatchRecommendRequest(user_ids=["u0000001"], n=0), INVALID, "n:"),
    ("BatchRecommend", reco_pb2.BatchRecommendRequest(user_ids=["u"] * 101, n=3), EXHAUSTED, "user_ids:"),
]


@pytest.mark.parametrize(("rpc", "request_", "code", "prefix"), BAD_REQUESTS,
                         ids=[f"{i}-{rpc}-{p.split(':')[0]}" for i, (rpc, _, _, p) in enumerate(BAD_REQUESTS)])
def test_bad_requests(server: InProcess, rpc: str, request_: Message, code: grpc.StatusCode, prefix: str) -> None:
    got, details = code_of(getattr(server.stub(), rpc), request_)
    assert (got, details[:len(prefix)]) == (code, prefix), details


def test_a_message_over_the_size_limit_is_resource_exhausted(server: InProcess) -> None:
    # Refused by gRPC before any handler runs, so the message names no field.
    big = reco_pb2.RecommendRequest(user_id="u0000001", n=5, recent_item_ids=["x" * 1000] * 20_000)
    code, _ = code_of(server.stub().Recommend, big)
    assert code == EXHAUSTED


def test_a_refused_batch_user_is_an_error_of_that_user_only(server: InProcess) -> None:
    """Per user, not for the call: the other users are answered, and the refused id is not echoed."""
    users = ["u0000001", "", "y" * 513, "u0000002"]
    got = list(server.stub().BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=users, n=3), timeout=30))
    assert [(r.user_id, r.error.code) for r in got] == [
        ("u0000001", ""), ("", "INVALID_ARGUMENT"), ("", "INVALID_ARGUMENT"), ("u0000002", "")]
    assert all(r.error.message.startswith("user_id") for r in got[1:3]), [r.error.message for r in got]


def test_metadata_filters_without_metadata_fail_precondition(tmp_path: pathlib.Path) -> None:
    from reco_sidecar.training import demo_data, interactions, pipeline
    from tests.support.models import DEMO, PARAMS

    csv_path, _ = demo_data.write(DEMO, tmp_path / "i.csv")
    pipeline.train_als(interactions.read_csv(csv_path), tmp_path / "m", "plain", PARAMS)
    with in_process_sidecar(tmp_path / "m", "plain") as sc:
        code, details = code_of(sc.stub().Recommend, reco_pb2.RecommendRequest(
            user_id="u0000001", n=3, filter=reco_pb2.Filter(tags=["even"])))
    assert (code, details[:len("filter.tags:")]) == (grpc.StatusCode.FAILED_PRECONDITION, "filter.tags:"), details


def test_batch_streams_one_response_per_user(server: InProcess) -> None:
    users = [f"u{i:07d}" for i in range(40)]
    got = list(server.stub().BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=users, n=3), timeout=30))
    assert [r.index for r in got] == list(range(40)) and [r.user_id for r in got] == users


def test_reload_to_a_corrupt_version_is_failed_precondition_and_keeps_serving(sidecar: Harness) -> None:
    sc, root = sidecar
    bad = copy_version(root / "demo", 1)
    flip_byte(root / "demo" / str(bad) / "user_factors.npy")
    code, details = code_of(sc.stub().Reload, reco_pb2.ReloadRequest(version=str(bad)))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "sha256" in details
    status = sc.stub().GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=30)
    assert status.version == 1


def test_reload_to_a_good_version(sidecar: Harness) -> None:
    sc, root = sidecar
    good = copy_version(root / "demo", 1)
    resp = sc.stub().Reload(reco_pb2.ReloadRequest(version="latest"), timeout=60)
    assert (resp.old_version, resp.new_version) == (1, good)
    assert sc.stub().Recommend(reco_pb2.RecommendRequest(user_id="u0000001", n=2), timeout=30).version == good
