"""Port checks before any worker binds.

Workers bind with SO_REUSEPORT, which would let this sidecar silently share a port that
another server already listens on. A plain bind without SO_REUSEPORT fails on a port
with a listener, so probing with one first turns that into a clear error.
"""

from __future__ import annotations

import errno
import socket

from reco_sidecar.common.errors import PortInUse as PortInUse


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def probe(host: str, port: int) -> int:
    """The port (a free one for 0) if nothing listens on it; raises PortInUse otherwise."""
    s = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        # Lets the probe pass over TIME_WAIT remnants but still fail on a listener.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host.strip("[]"), port))
        bound: int = s.getsockname()[1]
        return bound
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise PortInUse(f"{host}:{port} is already in use (another server listens on it)") from None
        raise
    finally:
        s.close()
