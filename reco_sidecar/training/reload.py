"""Tells a running sidecar to serve a newly published version (the Reload RPC)."""

from __future__ import annotations

import pathlib

import grpc

from reco_sidecar.common import logs
from reco_sidecar.common.errors import InvalidArgument, Unavailable
from reco_sidecar.gen.reco.v1 import reco_pb2, reco_pb2_grpc

log = logs.get(__name__)


def read_token(path: pathlib.Path) -> str:
    """The first token of a tokens file, in the format of the sidecar's own --admin-tokens-file."""
    from reco_sidecar.common.tokens import read_tokens

    try:
        return read_tokens(path)[0]
    except ValueError as e:
        raise InvalidArgument(str(e), field="reload_token_file") from None


def request_reload(address: str, model: str, version: int | None, *, timeout: float = 120.0,
                   token: str | None = None) -> reco_pb2.ReloadResponse:
    """Blocks until every worker serves the version (None: the latest); raises Unavailable on failure."""
    request = reco_pb2.ReloadRequest(model=model, version="latest" if version is None else str(version))
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    with grpc.insecure_channel(address) as channel:
        try:
            stub = reco_pb2_grpc.RecommenderStub(channel)  # type: ignore[no-untyped-call]
            response: reco_pb2.ReloadResponse = stub.Reload(request, timeout=timeout, metadata=metadata)
        except grpc.RpcError as e:
            code = e.code() if isinstance(e, grpc.Call) else None
            details = e.details() if isinstance(e, grpc.Call) else str(e)
            raise Unavailable(f"reload at {address} failed: {getattr(code, 'name', code)}: {details}",
                              field="reload") from None
    log.info("reloaded", address=address, model=response.model, old_version=response.old_version,
             new_version=response.new_version, workers=response.workers,
             load_seconds=round(response.load_seconds, 3))
    return response
