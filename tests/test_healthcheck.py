"""The container health probe against real sidecars, plain and with mutual TLS."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys

import pytest

from tests.support.certs import Authority
from tests.support.server import running_sidecar


def probe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reco_sidecar.host.healthcheck", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})


def test_healthy_unknown_service_and_nothing_listening(demo_root: pathlib.Path) -> None:
    with running_sidecar(demo_root, "demo") as sc:
        ok = probe("--address", sc.address)
        by_env = probe(env={"RECO_HEALTHCHECK_ADDRESS": sc.worker_addresses[0]})
        service = probe("--address", sc.address, "--service", "reco.v1.Recommender")
        unknown = probe("--address", sc.address, "--service", "no.such.Service")
    assert (ok.returncode, ok.stdout.strip()) == (0, f"{sc.address}: SERVING")
    assert (by_env.returncode, by_env.stdout.strip()) == (0, f"{sc.worker_addresses[0]}: SERVING")
    assert service.returncode == 0
    assert (unknown.returncode, unknown.stdout.strip()) == (1, f"{sc.address}: NOT_FOUND")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = probe("--address", f"127.0.0.1:{port}", "--timeout", "5")
    assert (down.returncode, down.stdout.strip()) == (1, f"127.0.0.1:{port}: UNAVAILABLE")


def test_probe_over_mutual_tls(demo_root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    ca = Authority(tmp_path, "ca")
    server, client = ca.issue("server", server=True), ca.issue("client", server=False)
    args = ["--tls-cert", str(server.cert), "--tls-key", str(server.key), "--tls-client-ca", str(ca.pem.cert)]
    with running_sidecar(demo_root, "demo", extra_args=args) as sc:
        ok = probe("--address", sc.address, "--tls-ca", str(ca.pem.cert), "--tls-cert", str(client.cert),
                   "--tls-key", str(client.key))
        by_env = probe(env={"RECO_HEALTHCHECK_ADDRESS": f"localhost:{sc.address.rsplit(':', 1)[1]}",
                            "RECO_HEALTHCHECK_TLS_CA": str(ca.pem.cert),
                            "RECO_HEALTHCHECK_TLS_CERT": str(client.cert),
                            "RECO_HEALTHCHECK_TLS_KEY": str(client.key)})
        without_client_cert = probe("--address", sc.address, "--tls-ca", str(ca.pem.cert))
        plaintext = probe("--address", sc.address)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert by_env.returncode == 0, by_env.stdout + by_env.stderr
    assert without_client_cert.returncode == 1 and "UNAVAILABLE" in without_client_cert.stdout
    assert plaintext.returncode == 1


@pytest.mark.parametrize("missing", ["--tls-cert", "--tls-key"])
def test_a_client_certificate_needs_its_key(missing: str, tmp_path: pathlib.Path) -> None:
    f = tmp_path / "pem"
    f.write_text("x")
    args = {"--tls-ca": str(f), "--tls-cert": str(f), "--tls-key": str(f)}
    del args[missing]
    result = probe("--address", "127.0.0.1:1", *[x for kv in args.items() for x in kv])
    assert result.returncode != 0 and "go together" in result.stderr
