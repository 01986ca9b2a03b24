"""Transport security for the server: TLS, and mutual TLS when a client CA is given."""

from __future__ import annotations

import grpc

from reco_sidecar.settings import ServeSettings


def server_credentials(settings: ServeSettings) -> grpc.ServerCredentials | None:
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    chain = settings.tls_cert.read_bytes()
    key = settings.tls_key.read_bytes()
    if settings.tls_client_ca is None:
        return grpc.ssl_server_credentials([(key, chain)])
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=settings.tls_client_ca.read_bytes(), require_client_auth=True
    )
