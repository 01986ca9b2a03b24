"""A loopback TCP relay in front of a real server that slows the server's answers, as a slow
network or a trickling proxy would:

- `bytes_per_second`: every answer comes at that rate, so a download lasts long enough to break
  the server mid-way;
- `drip(pattern, ...)`: the answer to a request whose bytes contain `pattern` (say a version's
  key prefix) comes `per_drip` bytes every `every` seconds, everything else at full speed (a
  connection keeps the pace of the first request that matched). A store that trickles one
  download is what makes a follower without deadlines sit in one read forever, while reading
  the pointer and the markers still works.

When the server dies the relay closes the client's side, as the network would."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

CHUNK = 65536
# A connection at `bytes_per_second` sends this many bytes at a time, each after its share of a second.
RATE_STEP = 4096

Pace = tuple[float, int]  # (every seconds, per_drip bytes)


class Relay:
    def __init__(self, upstream_port: int, bytes_per_second: int | None = None) -> None:
        self.upstream_port = upstream_port
        self._rate: Pace | None = (RATE_STEP / bytes_per_second, RATE_STEP) if bytes_per_second else None
        # a request holding one of these is answered `per_drip` bytes every `every` seconds
        self.patterns: dict[bytes, Pace] = {}
        self.dripped_requests = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closing = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def drip(self, pattern: str, *, every: float, per_drip: int = 1) -> None:
        with self._lock:
            self.patterns[pattern.encode()] = (every, per_drip)

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            # the connection's pace: the link's rate from the start, or a pattern's once a request matched
            dripping: list[Pace] = [self._rate] if self._rate else []
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._requests, args=(client, upstream, dripping), daemon=True).start()
            threading.Thread(target=self._responses, args=(upstream, client, dripping), daemon=True).start()

    def _requests(self, src: socket.socket, dst: socket.socket, dripping: list[Pace]) -> None:
        try:
            while data := src.recv(CHUNK):
                with self._lock:
                    pace = next((v for p, v in self.patterns.items() if p in data), None)
                    if pace is not None and not dripping:
                        self.dripped_requests += 1
                        dripping.append(pace)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._close(src, dst)

    def _responses(self, src: socket.socket, dst: socket.socket, dripping: list[Pace]) -> None:
        try:
            while data := src.recv(CHUNK):
                if not dripping:
                    dst.sendall(data)
                    continue
                every, per_drip = dripping[0]
                for i in range(0, len(data), per_drip):
                    if self._closing.wait(every):
                        return
                    dst.sendall(data[i : i + per_drip])
        except OSError:
            pass
        finally:
            self._close(src, dst)

    @staticmethod
    def _close(*sockets: socket.socket) -> None:
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self._closing.set()
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.close()


@contextlib.contextmanager
def relay(upstream_port: int, *, bytes_per_second: int | None = None) -> Iterator[Relay]:
    link = Relay(upstream_port, bytes_per_second)
    try:
        yield link
    finally:
        link.close()
