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
import sys

from reco_sidecar.artifact import checksums, version_choice
from reco_sidecar.artifact.version_choice import Chosen, NoVersion, Verdict
from reco_sidecar.common import priority
from reco_sidecar.common.errors import ErrorKind
from reco_sidecar.common.versions import VersionSpec
from reco_sidecar.runtime import wire
from reco_sidecar.runtime.channel import Channel, Undeliverable, pair

PR_SET_PDEATHSIG = 1
# A verdict that would not fit one frame (hundreds of bad versions) is sent with each reason
# cut to this length: every bad version is still reported.
SHORT_REASON = 200


class Verifier:
    def __init__(self, model_dir: pathlib.Path) -> None:
        self.model_dir = model_dir
        self.pid = 0
        self._channel: Channel | None = None
        self.job: int | None = None

    def fileno(self) -> int:
        assert self._channel is not None
        return self._channel.fileno()

    @property
    def running(self) -> bool:
        return self._channel is not None

    def start(self, close_in_child: list[int]) -> None:
        parent, child = pair()
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
                _child(self.model_dir, Channel(child))
                code = 0
            finally:
                os._exit(code)
        child.close()
        self.pid, self._channel = pid, Channel(parent)

    def submit(self, ticket: int, spec: VersionSpec, known_bad: frozenset[int]) -> bool:
        """False if the helper is gone (its death is reported by `read`/`died`)."""
        assert self._channel is not None
        self.job = ticket
        return self._channel.send(wire.Verify(ticket, spec, tuple(sorted(known_bad))))

    def read(self) -> tuple[int, Verdict] | None:
        """The finished job, or None when the helper died or sent nonsense (then call `died`)."""
        assert self._channel is not None
        try:
            answer = self._channel.recv(wire.decode_from_verifier)
        except ValueError:
            return None
        if answer is None:
            return None
        self.job = None
        bad = tuple((b.version, b.reason) for b in answer.bad)
        match answer:
            case wire.VersionChosen(ticket, version, _, digests):
                for d in digests:
                    checksums.remember((d.dev, d.ino, d.size, d.mtime_ns, d.ctime_ns), d.sha256)
                return ticket, Chosen(version, bad)
            case wire.VersionRefused(ticket, kind, message, field, _):
                return ticket, NoVersion(kind, message, field, bad)

    def died(self) -> tuple[int, Verdict] | None:
        """Forget the dead helper; the job it was running fails with the reason."""
        if self._channel is not None:
            self._channel.close()
        self._channel = None
        self.kill()
        job, self.job = self.job, None
        if job is None:
            return None
        return job, NoVersion(ErrorKind.FAILED_PRECONDITION, "the verification process died while checking "
                              "the version (out of memory?)", "version")

    def kill(self) -> None:
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.pid = 0


def _child(model_dir: pathlib.Path, channel: Channel) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.set_wakeup_fd(-1)
    # Hashing a new version takes a core for a while: a reload under load slows the reload,
    # not the requests (this process has one thread).
    priority.lower_this_thread()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    while True:
        job = channel.recv(wire.decode_to_verifier)
        if job is None:
            return
        verdict = version_choice.choose_version(model_dir, job.spec, known_bad=frozenset(job.known_bad))
        try:
            channel.send(answer(job.ticket, verdict, model_dir))
        except Undeliverable:
            channel.send(answer(job.ticket, verdict, model_dir, reason_limit=SHORT_REASON))


def answer(ticket: int, verdict: Verdict, model_dir: pathlib.Path,
           reason_limit: int | None = None) -> wire.FromVerifier:
    """The verdict as it crosses; a chosen version carries the digests this process computed
    for its files, keyed by file identity, so the supervisor can hand them to running
    workers with the reload and to workers it forks later: none of them hashes it again."""
    bad = tuple(wire.BadVersion(v, r[:reason_limit]) for v, r in verdict.bad)
    match verdict:
        case Chosen(version):
            digests = tuple(wire.FileDigest(*k, digest) for k, digest in checksums.known(model_dir / str(version)))
            return wire.VersionChosen(ticket, version, bad, digests)
        case NoVersion(kind, message, field):
            return wire.VersionRefused(ticket, kind, message[:reason_limit], field, bad)
