"""Supervisor <-> worker messages: msgpack maps over a SOCK_SEQPACKET socket pair, so each
send is one whole message and a closed peer reads as EOF."""

from __future__ import annotations

import socket
import threading
from typing import Any

import msgpack

MAX_MESSAGE = 1 << 20


def pair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


class Channel:
    """One end; sends are serialized so several threads may send."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._send_lock = threading.Lock()

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, message: dict[str, Any]) -> bool:
        """False when the peer is gone."""
        data = msgpack.packb(message)
        try:
            with self._send_lock:
                self.sock.send(data)
        except OSError:
            return False
        return True

    def recv(self) -> dict[str, Any] | None:
        """The next message, or None at EOF."""
        try:
            data = self.sock.recv(MAX_MESSAGE)
        except OSError:
            return None
        if not data:
            return None
        message = msgpack.unpackb(data)
        if not isinstance(message, dict):
            raise ValueError("control message is not a map")
        return message

    def close(self) -> None:
        self.sock.close()
