"""Holds the serving model of one process and swaps it atomically.

Requests lease the current handle for their whole duration, so a swap never changes the
model under a running request; the retired handle is released (memory unmapped) when its
last lease ends. A failed load is recorded as a FAILED version, never raised into serving,
and the serving version is never unloaded until another one is ready.
"""

from __future__ import annotations

import enum
import pathlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from reco_sidecar.artifact import checksums, version_dirs
from reco_sidecar.common import logs
from reco_sidecar.common.errors import FailedPrecondition, Unavailable
from reco_sidecar.engine.model import Model
from reco_sidecar.manager import warmup

log = logs.get(__name__)


class VersionState(enum.Enum):
    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    UNLOADING = "UNLOADING"
    FAILED = "FAILED"
    END = "END"


@dataclass
class VersionStatus:
    version: int
    state: VersionState
    error: str = ""


class _Handle:
    """A model plus the count of requests using it."""

    __slots__ = ("drained", "leases", "model", "retired")

    def __init__(self, model: Model) -> None:
        self.model = model
        self.leases = 0
        self.retired = False
        self.drained = threading.Event()


Opener = Callable[[pathlib.Path], Model]


class ModelManager:
    def __init__(self, model_root: pathlib.Path, name: str, opener: Opener) -> None:
        self.model_root = model_root
        self.name = name
        self._open = opener
        self._lock = threading.Lock()
        self._current: _Handle | None = None
        self._prepared: dict[int, Model] = {}
        self._status: dict[int, VersionStatus] = {}
        # Versions another process (the supervisor, or a reload that failed on another worker)
        # found bad; this one may never have touched them, yet lists them FAILED.
        self._failed_elsewhere: dict[int, str] = {}

    @property
    def opener(self) -> Opener:
        return self._open

    # -- serving side -------------------------------------------------------------------------

    @contextmanager
    def lease(self) -> Iterator[Model]:
        with self._lock:
            handle = self._current
            if handle is None:
                raise Unavailable("no model version is loaded yet")
            handle.leases += 1
        try:
            yield handle.model
        finally:
            with self._lock:
                handle.leases -= 1
                if handle.retired and handle.leases == 0:
                    handle.drained.set()

    @property
    def current(self) -> Model | None:
        h = self._current
        return h.model if h else None

    def statuses(self) -> list[VersionStatus]:
        with self._lock:
            out = {v: VersionStatus(s.version, s.state, s.error) for v, s in self._status.items()}
            serving = self._current.model.version if self._current is not None else None
            for version, reason in self._failed_elsewhere.items():
                own = out.get(version)
                # What this process holds (loading, or prepared before an abort drops it) is shown
                # as it is; its own failure names the file it could not load, more precisely.
                if version != serving and (own is None or own.state in (VersionState.END, VersionState.UNLOADING)):
                    out[version] = VersionStatus(version, VersionState.FAILED, reason)
            return [out[v] for v in sorted(out)]

    def mark_failed(self, version: int, reason: str) -> None:
        """Records that `version` was found bad elsewhere; preparing it again clears this."""
        with self._lock:
            self._failed_elsewhere[version] = reason

    # -- loading side ---------------------------------------------------------------------------

    def prepare(self, version: int) -> Model:
        """Loads, validates and warms `version` without serving it. Raises FailedPrecondition."""
        cur = self.current
        if cur is not None and cur.version == version:
            return cur
        with self._lock:
            self._status[version] = VersionStatus(version, VersionState.LOADING)
            # Asked to load it again (a Reload naming it after it was fixed): its new outcome counts.
            self._failed_elsewhere.pop(version, None)
        path = version_dirs.version_dir(self.model_root, self.name, version)
        hashed_before = checksums.hashed_bytes()
        try:
            model = self._open(path)
            warmup.warm(model)
        except Exception as e:  # not only ArtifactError: an odd file can make any check raise
            with self._lock:
                self._status[version] = VersionStatus(version, VersionState.FAILED, str(e))
            log.warning("model_load_failed", model=self.name, version=version, error=str(e))
            raise FailedPrecondition(f"version {version} cannot be loaded: {e}", field="version") from e
        with self._lock:
            self._prepared[version] = model
            self._status[version] = VersionStatus(version, VersionState.AVAILABLE)
        # hashed_bytes: what this process read to check the files' sha256 (0 when the
        # supervisor's verification of these very files was handed over)
        log.info("model_loaded", model=self.name, version=version, load_seconds=round(model.load_seconds, 4),
                 users=model.users.__len__(), items=model.items.__len__(),
                 hashed_bytes=checksums.hashed_bytes() - hashed_before)
        return model

    def abort(self, version: int) -> None:
        with self._lock:
            dropped = self._prepared.pop(version, None)
            if dropped is not None and self._status.get(version, None) is not None:
                serving = self._current is not None and self._current.model is dropped
                if not serving:
                    self._status[version] = VersionStatus(version, VersionState.END)

    def commit(self, version: int, drain_timeout: float = 30.0) -> int | None:
        """Serves the prepared `version`; waits until requests on the old one have finished.

        Returns the old version (None if there was none).
        """
        with self._lock:
            if self._current is not None and self._current.model.version == version:
                self._prepared.pop(version, None)
                return version
            model = self._prepared.pop(version, None)
            if model is None:
                raise FailedPrecondition(f"version {version} was not prepared", field="version")
            old = self._current
            self._current = _Handle(model)
            if old is not None:
                old.retired = True
                if old.leases == 0:
                    old.drained.set()
                self._status[old.model.version] = VersionStatus(old.model.version, VersionState.UNLOADING)
        log.info("model_swapped", model=self.name, version=version, old_version=old.model.version if old else None)
        if old is None:
            return None
        drained = old.drained.wait(drain_timeout)
        if drained:
            # Only now: unmapping the index under a running request would crash the process.
            self._release(old.model)
        with self._lock:
            self._status[old.model.version] = VersionStatus(old.model.version, VersionState.END)
        if not drained:
            log.warning("model_drain_timeout", model=self.name, version=old.model.version)
        return old.model.version

    def load(self, version: int) -> Model:
        """prepare + commit: used at start and for single-process reloads."""
        self.prepare(version)
        self.commit(version)
        model = self.current
        assert model is not None
        return model

    @staticmethod
    def _release(model: Model) -> None:
        # The annoy index holds an mmap the garbage collector cannot see; unmap it explicitly.
        started = time.perf_counter()
        model.ann.unload()
        log.debug("model_released", version=model.version, seconds=round(time.perf_counter() - started, 4))
