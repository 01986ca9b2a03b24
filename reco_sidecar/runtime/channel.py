"""One end of a process boundary: typed messages (wire.py) over a SOCK_SEQPACKET socket,
so each send is one whole message and a closed peer reads as EOF. The same channel joins
the supervisor to each worker, to the verifier helper and to the store follower."""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

from reco_sidecar.runtime import wire

T = TypeVar("T")
# Receive buffer: larger than any frame a sender may send (wire.MAX_FRAME), so a frame that
# is too large arrives truncated and fails to decode instead of splitting.
RECV_BUFFER = 4 * wire.MAX_FRAME
# The peer's process is gone: its death is reported by the pool (SIGCHLD), not here.
_PEER_GONE = {errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.EBADF}


class Undeliverable(Exception):
    """The peer is alive but this message cannot reach it (a frame its socket refuses)."""


def pair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


class Channel:
    """One end; sends are serialized so several threads may send."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._send_lock = threading.Lock()

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, message: wire.Message, *, droppable: bool = False) -> bool:
        """False when the peer is gone. A `droppable` message (a heartbeat) is dropped instead of
        waiting when the peer is not reading (a stopped supervisor): the next one replaces it.
        Raises Undeliverable (wire.FrameTooLarge among them) for a message that cannot cross."""
        try:
            data = wire.encode(message)
        except wire.FrameTooLarge as e:
            raise Undeliverable(str(e)) from e
        try:
            with self._send_lock:
                self.sock.send(data, socket.MSG_DONTWAIT if droppable else 0)
        except BlockingIOError:
            return True
        except OSError as e:
            if e.errno in _PEER_GONE:
                return False
            raise Undeliverable(f"{message.TAG}: {e}") from e
        return True

    def recv(self, decode: Callable[[bytes], T]) -> T | None:
        """The next message, None at EOF; ValueError for a malformed one."""
        try:
            data = self.sock.recv(RECV_BUFFER)
        except OSError:
            return None
        return decode(data) if data else None

    def close(self) -> None:
        self.sock.close()
