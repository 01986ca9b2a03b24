"""Container health probe: asks grpc.health.v1 and exits 0 when the server is SERVING, 1 otherwise.

Usage: python -m reco_sidecar.host.healthcheck [--address HOST:PORT] [--service NAME]
       [--tls-ca PEM [--tls-cert PEM --tls-key PEM] [--server-name NAME]]
Every option defaults to a RECO_HEALTHCHECK_* variable; the address to the local RECO_PORT.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

EXIT_HEALTHY = 0
EXIT_UNHEALTHY = 1


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"RECO_HEALTHCHECK_{name}", default)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m reco_sidecar.host.healthcheck", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--address", default=_env("ADDRESS", f"127.0.0.1:{os.environ.get('RECO_PORT', '50051')}"),
                   help="server to probe [env RECO_HEALTHCHECK_ADDRESS]")
    p.add_argument("--service", default=_env("SERVICE", ""),
                   help="service name; empty: the whole server [env RECO_HEALTHCHECK_SERVICE]")
    p.add_argument("--timeout", type=float, default=float(_env("TIMEOUT", "3") or 3),
                   help="seconds [env RECO_HEALTHCHECK_TIMEOUT]")
    p.add_argument("--tls-ca", type=pathlib.Path, default=_env("TLS_CA"),
                   help="PEM CA that signed the server certificate; enables TLS [env RECO_HEALTHCHECK_TLS_CA]")
    p.add_argument("--tls-cert", type=pathlib.Path, default=_env("TLS_CERT"),
                   help="PEM client certificate, for mutual TLS [env RECO_HEALTHCHECK_TLS_CERT]")
    p.add_argument("--tls-key", type=pathlib.Path, default=_env("TLS_KEY"),
                   help="PEM client key, for mutual TLS [env RECO_HEALTHCHECK_TLS_KEY]")
    p.add_argument("--server-name", default=_env("SERVER_NAME"),
                   help="name the server certificate must carry, when not the address's host "
                        "[env RECO_HEALTHCHECK_SERVER_NAME]")
    return p


def probe(args: argparse.Namespace) -> str:
    """The serving status name, or the gRPC error code name when the call failed."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    options: list[tuple[str, str]] = []
    if args.tls_ca is None:
        channel = grpc.insecure_channel(args.address)
    else:
        if (args.tls_cert is None) != (args.tls_key is None):
            raise SystemExit("--tls-cert and --tls-key go together")
        credentials = grpc.ssl_channel_credentials(
            root_certificates=pathlib.Path(args.tls_ca).read_bytes(),
            private_key=pathlib.Path(args.tls_key).read_bytes() if args.tls_key else None,
            certificate_chain=pathlib.Path(args.tls_cert).read_bytes() if args.tls_cert else None,
        )
        if args.server_name:
            options.append(("grpc.ssl_target_name_override", args.server_name))
        channel = grpc.secure_channel(args.address, credentials, options=options)
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout)
        except grpc.RpcError as e:
            return str(e.code().name)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    status = probe(args)
    print(f"{args.address}: {status}")
    return EXIT_HEALTHY if status == "SERVING" else EXIT_UNHEALTHY


if __name__ == "__main__":
    raise SystemExit(main())
