"""Resolving and verifying a version (hashing every file) off the supervisor's loop.

The supervisor forks this helper process while it is still single-threaded; it keeps its
own checksum cache (so alternating reloads do not re-hash), takes one job at a time over a
socket pair and answers with a verdict. The loop stays free to reap and restart workers and
to honour SIGTERM while a huge file is hashed; shutdown simply kills the helper. The
loader compares each file's size with the manifest before reading any byte of it, so the
manifest bounds how much is read. If the helper dies (a crash, the OOM killer), its job
fails with that reason and the next job gets a new helper.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pathlib
import signal
import socket
import sys
from typing import Any

import msgpack

from reco_sidecar.artifact import checksums
from reco_sidecar.artifact import version_choice as verification
from reco_sidecar.artifact.version_choice import Refused, Resolved, Verdict
from reco_sidecar.common import priority
from reco_sidecar.common.errors import ErrorKind
from reco_sidecar.common.versions import LATEST, VersionSpec, parse_version_spec

PR_SET_PDEATHSIG = 1
MAX_MESSAGE = 1 << 20


class Verifier:
    def __init__(self, model_dir: pathlib.Path) -> None:
        self.model_dir = model_dir
        self.pid = 0
        self._sock: socket.socket | None = None
        self.job: int | None = None

    def fileno(self) -> int:
        assert self._sock is not None
        return self._sock.fileno()

    @property
    def running(self) -> bool:
        return self._sock is not None

    def start(self, close_in_child: list[int]) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                parent.close()
                for fd in close_in_child:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                _child(self.model_dir, child)
                code = 0
            finally:
                os._exit(code)
        child.close()
        self.pid, self._sock = pid, parent

    def submit(self, ticket: int, spec: VersionSpec, known_bad: frozenset[int]) -> bool:
        """False if the helper is gone (its death is reported by `read`/`died`)."""
        assert self._sock is not None
        self.job = ticket
        try:
            self._sock.send(msgpack.packb([ticket, str(spec), sorted(known_bad)]))
        except OSError:
            return False
        return True

    def read(self) -> tuple[int, Verdict] | None:
        """The finished job, or None when the helper died (then call `died`)."""
        assert self._sock is not None
        try:
            data = self._sock.recv(MAX_MESSAGE)
        except OSError:
            data = b""
        if not data:
            return None
        ticket, verdict = _decode(data)
        self.job = None
        return ticket, verdict

    def died(self) -> tuple[int, Verdict] | None:
        """Forget the dead helper; the job it was running fails with the reason."""
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self.kill()
        job, self.job = self.job, None
        if job is None:
            return None
        return job, Refused(ErrorKind.FAILED_PRECONDITION, "the verification process died while checking "
                            "the version (out of memory?)", "version")

    def kill(self) -> None:
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.pid = 0


def _child(model_dir: pathlib.Path, sock: socket.socket) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.set_wakeup_fd(-1)
    # Hashing a new version takes a core for a while: a reload under load slows the reload,
    # not the requests (this process has one thread).
    priority.lower_this_thread()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    while True:
        data = sock.recv(MAX_MESSAGE)
        if not data:
            return
        ticket, spec_text, known_bad = msgpack.unpackb(data)
        spec = LATEST if spec_text == "latest" else parse_version_spec(spec_text)
        verdict = verification.resolve(model_dir, spec, known_bad=frozenset(known_bad))
        hashes = _hashes(model_dir / str(verdict.version)) if isinstance(verdict, Resolved) else []
        sock.send(_encode(ticket, verdict, hashes))


def _hashes(version_dir: pathlib.Path) -> list[list[Any]]:
    """The digests this process computed for the version's files, keyed by file identity, so
    the supervisor can remember them, hand them to running workers with the reload and to
    workers it forks later: none of them hashes the version again."""
    return [[*k, digest] for k, digest in checksums.known(version_dir)]


def _encode(ticket: int, verdict: Verdict, hashes: list[list[Any]]) -> bytes:
    bad = [list(b) for b in verdict.bad]
    body: list[Any] = ([ticket, "ok", verdict.version, bad, hashes] if isinstance(verdict, Resolved)
                       else [ticket, "refused", [verdict.kind.value, verdict.message, verdict.field], bad, hashes])
    data: bytes = msgpack.packb(body)
    return data


def _decode(data: bytes) -> tuple[int, Verdict]:
    ticket, what, body, bad_raw, hashes = msgpack.unpackb(data)
    bad = tuple((int(v), str(r)) for v, r in bad_raw)
    for dev, ino, size, mtime, ctime, digest in hashes:
        checksums.remember((int(dev), int(ino), int(size), int(mtime), int(ctime)), str(digest))
    if what == "ok":
        return int(ticket), Resolved(int(body), bad)
    kind, message, field = body
    result: Any = Refused(ErrorKind(kind), str(message), field, bad)
    return int(ticket), result
