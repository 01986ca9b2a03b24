"""The control channel between the supervisor and one worker: typed messages (wire.py)
over a SOCK_SEQPACKET socket pair, so each send is one whole message and a closed peer
reads as EOF."""

from __future__ import annotations

import socket
import threading

from reco_sidecar.runtime import wire

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

    def send(self, message: wire.Message, *, droppable: bool = False) -> bool:
        """False when the peer is gone. A `droppable` message (a heartbeat) is dropped instead of
        waiting when the peer is not reading (a stopped supervisor): the next one replaces it."""
        data = wire.encode(message)
        try:
            with self._send_lock:
                self.sock.send(data, socket.MSG_DONTWAIT if droppable else 0)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return True

    def recv_bytes(self) -> bytes | None:
        """The next message's bytes, or None at EOF."""
        try:
            data = self.sock.recv(MAX_MESSAGE)
        except OSError:
            return None
        return data or None

    def recv_to_worker(self) -> wire.ToWorker | None:
        """The worker's read: None at EOF; ValueError for a malformed message."""
        data = self.recv_bytes()
        return None if data is None else wire.decode_to_worker(data)

    def recv_to_supervisor(self) -> wire.ToSupervisor | None:
        data = self.recv_bytes()
        return None if data is None else wire.decode_to_supervisor(data)

    def close(self) -> None:
        self.sock.close()
