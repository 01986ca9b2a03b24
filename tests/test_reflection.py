"""Server reflection from a client's side: v1 and v1alpha, descriptors carrying the proto's
comments, method names as symbols, and ghz and grpcurl working from reflection alone."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2

from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.gotools import go_tool
from tests.support.requires import require
from tests.support.server import Sidecar, running_sidecar

SERVICES = {"v1": "grpc.reflection.v1.ServerReflection", "v1alpha": "grpc.reflection.v1alpha.ServerReflection"}
# FileDescriptorProto.message_type is field 4, DescriptorProto.field is field 2.
MESSAGE_TYPE, FIELD = 4, 2


@pytest.fixture(scope="module")
def sidecar(demo_root: pathlib.Path) -> Iterator[Sidecar]:
    with running_sidecar(demo_root, "demo") as sc:
        yield sc


def _ask(address: str, version: str, *requests: reflection_pb2.ServerReflectionRequest
         ) -> list[reflection_pb2.ServerReflectionResponse]:
    """One reflection stream on `version`'s service. v1's messages are v1alpha's, renamed."""
    with grpc.insecure_channel(address) as channel:
        call = channel.stream_stream(
            f"/{SERVICES[version]}/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        return list(call(iter(requests), timeout=10))


def _files(response: reflection_pb2.ServerReflectionResponse) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    assert response.HasField("file_descriptor_response"), response
    protos = [descriptor_pb2.FileDescriptorProto.FromString(b)
              for b in response.file_descriptor_response.file_descriptor_proto]
    return {p.name: p for p in protos}


def _field_comment(file: descriptor_pb2.FileDescriptorProto, message: str, field: str) -> str:
    m_index = [m.name for m in file.message_type].index(message)
    f_index = [f.name for f in file.message_type[m_index].field].index(field)
    path = [MESSAGE_TYPE, m_index, FIELD, f_index]
    (location,) = [loc for loc in file.source_code_info.location if list(loc.path) == path]
    return location.leading_comments


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_lists_every_service_including_both_reflections(sidecar: Sidecar, version: str) -> None:
    (answer,) = _ask(sidecar.address, version, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {s.name for s in answer.list_services_response.service}
    assert names == {"reco.v1.Recommender", "grpc.health.v1.Health", *SERVICES.values()}


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_descriptors_carry_the_proto_comments(sidecar: Sidecar, version: str) -> None:
    (answer,) = _ask(sidecar.address, version,
                     reflection_pb2.ServerReflectionRequest(file_containing_symbol="reco.v1.RecommendRequest"))
    reco = _files(answer)["reco/v1/reco.proto"]
    assert "no default" in _field_comment(reco, "RecommendRequest", "n")
    assert "INVALID_ARGUMENT" in _field_comment(reco, "RecommendRequest", "n")
    assert "Keep items the user has already interacted with." in _field_comment(reco, "Filter", "include_seen")
    # The comments belong to the very proto the server runs: without them (and protoc's
    # json_name, which the stubs leave implicit), the descriptors are equal.
    served = descriptor_pb2.FileDescriptorProto()
    served.CopyFrom(reco)
    served.ClearField("source_code_info")
    for message in [*served.message_type, *(n for m in served.message_type for n in m.nested_type)]:
        for field in message.field:
            field.ClearField("json_name")
    compiled = descriptor_pb2.FileDescriptorProto()
    reco_pb2.DESCRIPTOR.CopyToProto(compiled)
    assert served == compiled


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_symbols_methods_files_and_misses(sidecar: Sidecar, version: str) -> None:
    symbols = ["reco.v1.Recommender.Recommend", "reco.v1.Recommender", "reco.v1.RecommendRequest",
               "reco.v1.Filter", "reco.v1.Source"]
    answers = _ask(sidecar.address, version,
                   *[reflection_pb2.ServerReflectionRequest(file_containing_symbol=s) for s in symbols],
                   reflection_pb2.ServerReflectionRequest(file_by_filename="reco/v1/reco.proto"),
                   reflection_pb2.ServerReflectionRequest(file_containing_symbol="reco.v1.Nope.Method"),
                   reflection_pb2.ServerReflectionRequest(file_by_filename="nope.proto"))
    for answer in answers[: len(symbols) + 1]:
        assert "reco/v1/reco.proto" in _files(answer)
    for miss in answers[len(symbols) + 1:]:
        assert miss.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_each_reflection_service_describes_itself(sidecar: Sidecar, version: str) -> None:
    files = {}
    for v, service in SERVICES.items():
        request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=service)
        (answer,) = _ask(sidecar.address, version, request)
        (files[v],) = _files(answer).values()
    assert files["v1"].package == "grpc.reflection.v1"
    assert files["v1alpha"].package == "grpc.reflection.v1alpha"

    # v1 is v1alpha renamed: same messages, field names, numbers and types, so v1alpha's
    # classes read and write v1 on the wire.
    def shape(file: descriptor_pb2.FileDescriptorProto) -> list[tuple[str, list[tuple[str, int, int, str]]]]:
        return [(m.name, [(f.name, f.number, f.type, f.type_name.rsplit(".", 1)[-1]) for f in m.field])
                for m in file.message_type]

    assert shape(files["v1"]) == shape(files["v1alpha"])
    assert [m.name for m in files["v1"].service[0].method] == ["ServerReflectionInfo"]


def test_grpcurl_describe_shows_field_comments(sidecar: Sidecar) -> None:
    grpcurl = go_tool("grpcurl")
    require(grpcurl is not None, "grpcurl")
    assert grpcurl is not None
    out = subprocess.run([grpcurl, "-plaintext", sidecar.address, "describe", "reco.v1.RecommendRequest"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "no default" in out.stdout and "int32 n = 3;" in out.stdout, out.stdout
    listed = subprocess.run([grpcurl, "-plaintext", sidecar.address, "list"], capture_output=True, text=True,
                            timeout=60)
    assert set(listed.stdout.split()) == {"reco.v1.Recommender", "grpc.health.v1.Health", *SERVICES.values()}


def test_ghz_calls_through_reflection_alone(demo_root: pathlib.Path) -> None:
    ghz = go_tool("ghz")
    require(ghz is not None, "ghz")
    assert ghz is not None
    with running_sidecar(demo_root, "demo", workers=2) as sc:
        out = subprocess.run(
            [ghz, "--insecure", "--call", "reco.v1.Recommender.Recommend", "-d",
             '{"user_id": "u{{randomInt 0 500}}", "n": 5}', "-n", "200", "-c", "4", "--connections", "2",
             "-O", "json", sc.address],
            capture_output=True, text=True, timeout=120, env={**os.environ},
        )
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout)
        assert report["count"] == 200 and report["statusCodeDistribution"] == {"OK": 200}
