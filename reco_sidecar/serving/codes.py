"""Domain errors to gRPC status codes: the only place that knows the mapping."""

from __future__ import annotations

import grpc

from reco_sidecar.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    RecoError,
    ResourceExhausted,
    Unavailable,
)

STATUS_OF: dict[type[RecoError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_code(error: RecoError) -> grpc.StatusCode:
    for kind, code in STATUS_OF.items():
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL
