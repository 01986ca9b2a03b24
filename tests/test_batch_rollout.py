"""A BatchRecommend stream keeps what it took at its start: the experiments, and every model
version an arm answers with, even when ReloadExperiments drops that version mid-stream
(docs/api.md, BatchRecommend). Through the real process tree."""

from __future__ import annotations

import pathlib

import grpc
import pytest

from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.server import running_sidecar
from tests.support.versions import copy_version

pytestmark = pytest.mark.slow

PINNED = """
[[experiments]]
name = "versions"
salt = "versions-1"
share = 1.0
arms = [
  { name = "current", model = "demo", weight = 1 },
  { name = "old", model = "demo", version = 1, weight = 1 },
]
"""
# The same experiment without the pinned arm: the rollout drops version 1's pinned copy.
UNPINNED = """
[[experiments]]
name = "versions"
salt = "versions-1"
share = 1.0
arms = [
  { name = "current", model = "demo", weight = 1 },
]
"""
USERS = 120_000
# A small receive window and no window growth: the server can run only a few chunks ahead of
# what this client has read, so most of the stream is scored after the rollout.
SLOW_READER = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 65536)]


def test_a_stream_keeps_an_arms_pinned_version_that_a_rollout_drops(demo_copy: pathlib.Path,
                                                                   tmp_path: pathlib.Path) -> None:
    current = copy_version(demo_copy / "demo", 1)
    exp_file = tmp_path / "experiments.toml"
    exp_file.write_text(PINNED)
    ids = [f"user-{i}" for i in range(USERS)]
    with running_sidecar(demo_copy, "demo", workers=1, extra_args=["--experiments", str(exp_file)]) as sc:
        stub = sc.stub(None, **dict(SLOW_READER))
        stream = stub.BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=ids, n=3), timeout=300)
        first = next(stream)
        exp_file.write_text(UNPINNED)
        done = sc.stub().ReloadExperiments(reco_pb2.ReloadExperimentsRequest(), timeout=60)
        assert done.generation == 1
        # New calls see the new file: nobody is in the dropped arm any more.
        assert {sc.stub().Recommend(reco_pb2.RecommendRequest(user_id=u, n=3), timeout=10).arm
                for u in ids[:50]} == {"current"}
        try:
            rest = list(stream)
        except grpc.RpcError as e:
            pytest.fail(f"the stream failed after the rollout: {e.code()} {e.details()}")
        answers = [first, *rest]
        assert [a.index for a in answers] == list(range(USERS))
        assert not [a for a in answers if a.error.code]
        arms = {(a.arm, a.version) for a in answers}
        assert arms == {("current", current), ("old", 1)}
