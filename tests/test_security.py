"""TLS and mutual TLS on a real sidecar, with certificates made for the test."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from reco_sidecar.gen.reco.v1 import reco_pb2, reco_pb2_grpc
from tests.support.certs import Authority, Pem
from tests.support.server import Sidecar, running_sidecar


@dataclass(frozen=True)
class Pki:
    ca: Authority
    server: Pem
    client: Pem
    stranger: Pem  # a client certificate from an authority the server does not trust


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = Authority(directory, "test-ca")
    other = Authority(directory / "other", "other-ca")
    return Pki(ca, ca.issue("server", server=True), ca.issue("client", server=False),
               other.issue("stranger", server=False))


def _status(address: str, credentials: grpc.ChannelCredentials | None) -> reco_pb2.GetModelStatusResponse:
    channel = grpc.secure_channel(address, credentials) if credentials else grpc.insecure_channel(address)
    with channel:
        stub = reco_pb2_grpc.RecommenderStub(channel)  # type: ignore[no-untyped-call]
        status: reco_pb2.GetModelStatusResponse = stub.GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=10)
        return status


def _code(address: str, credentials: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as e:
        _status(address, credentials)
    return e.value.code()


def _tls(pki: Pki, client: Pem | None = None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=pki.ca.pem.cert_bytes(),
        private_key=client.key_bytes() if client else None,
        certificate_chain=client.cert_bytes() if client else None,
    )


@pytest.fixture(scope="module")
def tls_sidecar(demo_root: pathlib.Path, pki: Pki) -> Iterator[Sidecar]:
    args = ["--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key)]
    with running_sidecar(demo_root, "demo", workers=2, extra_args=args) as s:
        yield s


@pytest.fixture(scope="module")
def mtls_sidecar(demo_root: pathlib.Path, pki: Pki) -> Iterator[Sidecar]:
    args = ["--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key),
            "--tls-client-ca", str(pki.ca.pem.cert)]
    with running_sidecar(demo_root, "demo", workers=1, extra_args=args) as s:
        yield s


def test_tls_serves_the_shared_and_every_worker_address(tls_sidecar: Sidecar, pki: Pki) -> None:
    for address in [tls_sidecar.address, *tls_sidecar.worker_addresses]:
        assert _status(address, _tls(pki)).model == "demo"


def test_plaintext_to_a_tls_server_fails(tls_sidecar: Sidecar) -> None:
    assert _code(tls_sidecar.address, None) == grpc.StatusCode.UNAVAILABLE


def test_a_client_that_does_not_trust_the_servers_authority_fails(tls_sidecar: Sidecar, pki: Pki,
                                                                     tmp_path: pathlib.Path) -> None:
    untrusted = Authority(tmp_path, "untrusted-ca")
    credentials = grpc.ssl_channel_credentials(root_certificates=untrusted.pem.cert_bytes())
    assert _code(tls_sidecar.address, credentials) == grpc.StatusCode.UNAVAILABLE


def test_health_over_tls(tls_sidecar: Sidecar, pki: Pki) -> None:
    with grpc.secure_channel(tls_sidecar.address, _tls(pki)) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_mutual_tls_with_a_client_certificate_succeeds(mtls_sidecar: Sidecar, pki: Pki) -> None:
    assert _status(mtls_sidecar.address, _tls(pki, pki.client)).model == "demo"
    assert _status(mtls_sidecar.worker_addresses[0], _tls(pki, pki.client)).model == "demo"


def test_mutual_tls_without_a_client_certificate_fails(mtls_sidecar: Sidecar, pki: Pki) -> None:
    assert _code(mtls_sidecar.address, _tls(pki)) == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_with_a_certificate_from_another_authority_fails(mtls_sidecar: Sidecar, pki: Pki) -> None:
    assert _code(mtls_sidecar.address, _tls(pki, pki.stranger)) == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_refuses_plaintext(mtls_sidecar: Sidecar) -> None:
    assert _code(mtls_sidecar.address, None) == grpc.StatusCode.UNAVAILABLE
