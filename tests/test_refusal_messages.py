"""What a refused call tells its client, and what it leaves in the log, stays short and precise
whatever the client sends: names it echoes are cut, the field is named once, metadata past
gRPC's hard limit gets the code docs/api.md lists for it, and the caller's x-request-id is
logged cut to a bound. The stream limits the docs state are the defaults serve applies.
Through the real process tree."""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterator

import grpc
import pytest

from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.serving import handlers
from reco_sidecar.settings import ServeSettings
from tests.support.server import Sidecar, running_sidecar

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"
# Past about 8 KiB of status message a default client refuses the trailer itself and reports
# RESOURCE_EXHAUSTED instead of the sidecar's code; every refusal stays well under that.
SHORT = 1024
HUGE = 20_000


@pytest.fixture(scope="module")
def sidecar(demo_root: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    exp_file = tmp_path_factory.mktemp("experiments") / "experiments.toml"
    exp_file.write_text(GOOD)
    args = ["--experiments", str(exp_file), "--access-log", "on"]
    with running_sidecar(demo_root, "demo", workers=1, extra_args=args) as sc:
        sc.ready["experiments_file"] = str(exp_file)
        yield sc


GOOD = """
[[experiments]]
name = "feed"
salt = "feed-1"
share = 1.0
arms = [{ name = "control", model = "demo", weight = 1 }]
"""


def _refused(call: object, request: object, **kwargs: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as e:
        call(request, timeout=10, **kwargs)  # type: ignore[operator]
    return e.value


@pytest.mark.parametrize(("request_", "code", "field"), [
    (reco_pb2.RecommendRequest(model="m" * HUGE, user_id="u1", n=1), grpc.StatusCode.NOT_FOUND, "model"),
    (reco_pb2.RecommendRequest(user_id="u1", n=1, experiment="e" * HUGE), grpc.StatusCode.INVALID_ARGUMENT,
     "experiment"),
    (reco_pb2.RecommendRequest(user_id="u1", n=1, experiment="feed", arm="a" * HUGE),
     grpc.StatusCode.INVALID_ARGUMENT, "arm"),
], ids=["model", "experiment", "arm"])
def test_an_unknown_name_is_echoed_cut_and_the_code_is_the_sidecars(sidecar: Sidecar, request_: object,
                                                                    code: grpc.StatusCode, field: str) -> None:
    e = _refused(sidecar.stub().Recommend, request_)
    details = e.details() or ""
    assert e.code() == code, details[:200]
    assert details.startswith(f"{field}: ") and len(details) < SHORT, details[:200]


def test_a_refused_experiments_file_names_its_field_once(sidecar: Sidecar) -> None:
    exp_file = pathlib.Path(sidecar.ready["experiments_file"])
    exp_file.write_text(GOOD.replace('name = "feed"', 'name = "feed feed"'))
    try:
        e = _refused(sidecar.stub().ReloadExperiments, reco_pb2.ReloadExperimentsRequest())
    finally:
        exp_file.write_text(GOOD)
    details = e.details() or ""
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details.startswith("experiments[0].name: ") and details.count("experiments[0].name") == 1, details


def test_metadata_past_grpcs_hard_limit_gets_the_documented_code(sidecar: Sidecar) -> None:
    e = _refused(sidecar.stub().Recommend, reco_pb2.RecommendRequest(user_id="u1", n=1),
                 metadata=[("x-padding", "p" * HUGE)])
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    row = next(line for line in (DOCS / "api.md").read_text().splitlines()
               if line.startswith("| `RESOURCE_EXHAUSTED`"))
    assert "metadata" in row and "16 KiB" in row


def test_a_long_request_id_is_logged_cut_to_its_bound(sidecar: Sidecar) -> None:
    marker = "rid-long-"
    request_id = marker + "r" * 7000
    _refused(sidecar.stub().Recommend, reco_pb2.RecommendRequest(user_id="", n=1),
             metadata=[("x-request-id", request_id)])
    lines = [e for e in sidecar.log_events() if str(e.get("request_id", "")).startswith(marker)]
    assert len(lines) == 1
    assert lines[0]["request_id"] == request_id[:handlers.MAX_REQUEST_ID_CHARS]
    assert handlers.MAX_REQUEST_ID_CHARS <= 256


def test_the_side_stream_limit_the_docs_state_is_the_default() -> None:
    default = ServeSettings(model_root=pathlib.Path(".")).max_side_streams
    for doc, pattern in (("api.md", r"more than (\d+) reflection \(or health `Watch`\) streams"),
                         ("security.md", r"allows (\d+) open\s+streams per worker")):
        found = re.findall(pattern, (DOCS / doc).read_text())
        assert found and {int(n) for n in found} == {default}, (doc, found)
