"""Server reflection (grpc.aio) on `grpc.reflection.v1` and `v1alpha`, serving reco.proto with its comments.

- grpcio-reflection implements only v1alpha (grpc/grpc#38576). v1 is the same service
  renamed, message for message and field for field, so the v1alpha servicer answers v1
  calls too, and v1's descriptor is v1alpha's with the package renamed.
- The generated stubs drop the proto's comments. reco.binpb (written by protogen beside
  the stubs) keeps them as source info, so `grpcurl describe` shows what each field means.
- ghz and grpcurl ask for the file containing `pkg.Service.Method`; protobuf's upb pool only
  finds files by service and message names (grpc/grpc#34743), so a method's name falls back
  to its service's, which lives in the same file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any

import grpc
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2
from grpc_reflection.v1alpha._async import ReflectionServicer

V1ALPHA = reflection.SERVICE_NAME
V1 = "grpc.reflection.v1.ServerReflection"
_V1_FILE = "grpc/reflection/v1/reflection.proto"


def _proto_of(file: descriptor.FileDescriptor) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    file.CopyToProto(proto)
    return proto


def v1_file() -> descriptor_pb2.FileDescriptorProto:
    """grpc/reflection/v1/reflection.proto, derived from v1alpha's descriptor."""
    old, new = reflection_pb2.DESCRIPTOR.package, "grpc.reflection.v1"
    proto = _proto_of(reflection_pb2.DESCRIPTOR)
    proto.name, proto.package = _V1_FILE, new
    proto.ClearField("options")

    def rename(messages: Iterable[descriptor_pb2.DescriptorProto]) -> None:
        for message in messages:
            for field in message.field:
                if field.HasField("type_name"):  # proto2: assigning "" would set it
                    field.type_name = field.type_name.replace(f".{old}.", f".{new}.")
            rename(message.nested_type)

    rename(proto.message_type)
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(f".{old}.", f".{new}.")
            method.output_type = method.output_type.replace(f".{old}.", f".{new}.")
    return proto


def reco_file() -> descriptor_pb2.FileDescriptorProto:
    """reco/v1/reco.proto with its comments, as protoc wrote it beside the stubs."""
    data = resources.files("reco_sidecar.gen.reco.v1").joinpath("reco.binpb").read_bytes()
    (proto,) = descriptor_pb2.FileDescriptorSet.FromString(data).file
    return proto


class Descriptors:
    """The files reflection serves, by name, and a pool to find symbols in them."""

    def __init__(self, files: Sequence[descriptor_pb2.FileDescriptorProto]) -> None:
        self.pool = descriptor_pool.DescriptorPool()
        self._serialized: dict[str, bytes] = {}
        for proto in files:  # dependencies first
            data = proto.SerializeToString()
            self.pool.AddSerializedFile(data)
            self._serialized[proto.name] = data

    def serialized_with_dependencies(self, file: descriptor.FileDescriptor) -> list[bytes]:
        seen: dict[str, bytes] = {}
        pending = [file]
        while pending:
            f = pending.pop()
            if f.name in seen:
                continue
            seen[f.name] = self._serialized[f.name]
            pending.extend(f.dependencies)
        return list(seen.values())


def default_descriptors() -> Descriptors:
    return Descriptors([reco_file(), _proto_of(health_pb2.DESCRIPTOR), _proto_of(reflection_pb2.DESCRIPTOR),
                        v1_file()])


class Reflection(ReflectionServicer):  # type: ignore[misc]  # an untyped library class
    def __init__(self, service_names: Sequence[str], descriptors: Descriptors) -> None:
        super().__init__(service_names, pool=descriptors.pool)
        self._descriptors = descriptors

    def _file_by_filename(self, request: Any, filename: str) -> Any:
        try:
            return self._response(request, self._pool.FindFileByName(filename))
        except KeyError:
            return _not_found(request)

    def _file_containing_symbol(self, request: Any, fully_qualified_name: str) -> Any:
        candidates = [fully_qualified_name]
        if "." in fully_qualified_name:
            candidates.append(fully_qualified_name.rsplit(".", 1)[0])
        for i, symbol in enumerate(candidates):
            try:
                if i > 0:
                    self._pool.FindServiceByName(symbol)  # only a method falls back to its service
                return self._response(request, self._pool.FindFileContainingSymbol(symbol))
            except KeyError:
                continue
        return _not_found(request)

    def _response(self, request: Any, file: descriptor.FileDescriptor) -> Any:
        return reflection_pb2.ServerReflectionResponse(
            file_descriptor_response=reflection_pb2.FileDescriptorResponse(
                file_descriptor_proto=self._descriptors.serialized_with_dependencies(file)),
            original_request=request,
        )


def _not_found(request: Any) -> Any:
    return reflection_pb2.ServerReflectionResponse(
        error_response=reflection_pb2.ErrorResponse(
            error_code=grpc.StatusCode.NOT_FOUND.value[0], error_message="not found"),
        original_request=request,
    )


def method_handlers(service_names: Sequence[str]) -> dict[str, dict[str, grpc.RpcMethodHandler[Any, Any]]]:
    """Handlers for reflection on `service_names` and on itself, on v1 and v1alpha (one
    handler: the same messages on the wire, v1alpha's classes (de)serialize v1's)."""
    servicer = Reflection((*service_names, V1ALPHA, V1), default_descriptors())
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    return {V1ALPHA: {"ServerReflectionInfo": handler}, V1: {"ServerReflectionInfo": handler}}
