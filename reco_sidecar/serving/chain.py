"""The server's interceptor chain: observation outermost, then authentication."""

from __future__ import annotations

from typing import Any

import grpc

from reco_sidecar.serving import auth
from reco_sidecar.serving.interceptors import ObservingInterceptor
from reco_sidecar.settings import ServeSettings


def server_interceptors(settings: ServeSettings) -> list[grpc.ServerInterceptor[Any, Any]]:
    """Outermost first: a call refused by authentication is still logged and counted."""
    chain: list[grpc.ServerInterceptor[Any, Any]] = [ObservingInterceptor()]
    authenticator = auth.from_settings(settings)
    if authenticator is not None:
        chain.append(auth.AuthInterceptor(authenticator))
    return chain
