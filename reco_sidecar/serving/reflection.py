"""Server reflection that also answers for a method's full name.

ghz and grpcurl ask for the file containing `pkg.Service.Method`; protobuf's upb pool only
finds files by service and message names (grpc/grpc#34743), so the stock servicer answers
NOT_FOUND and ghz fails with "Symbol not found". Falling back to the service's name gives
them the same file the method lives in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc


class MethodAwareReflection(reflection.ReflectionServicer):
    def _file_containing_symbol(self, request: Any, fully_qualified_name: str) -> Any:
        response = super()._file_containing_symbol(request, fully_qualified_name)
        if not response.HasField("error_response") or "." not in fully_qualified_name:
            return response
        service = fully_qualified_name.rsplit(".", 1)[0]
        try:
            self._pool.FindServiceByName(service)
        except KeyError:
            return response
        return super()._file_containing_symbol(request, service)


def enable(service_names: Sequence[str], server: grpc.Server) -> None:
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        MethodAwareReflection(service_names), server)
