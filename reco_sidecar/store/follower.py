"""Follows the store for one model: finds the version replicas should serve (the CURRENT
pointer, else the newest published), downloads it into the cache and says so. It runs in
its own process (runtime/store_follower.py), never in the supervisor's loop or a worker."""

from __future__ import annotations

import pathlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from reco_sidecar.common import logs
from reco_sidecar.common.errors import ErrorKind
from reco_sidecar.store import cache, download
from reco_sidecar.store.errors import NotPublished, StoreError, StoreUnreachable
from reco_sidecar.store.remote import RemoteModel
from reco_sidecar.store.status import StoreStatus

log = logs.get(__name__)
PROGRESS_EVERY = 0.5  # seconds between progress reports during a download


@dataclass(frozen=True)
class Needs:
    """The version must be downloaded before anyone can have it."""

    version: int


@dataclass(frozen=True)
class Outcome:
    """The answer to one sync: a version in the cache, or why there is none."""

    version: int | None
    # NOT_FOUND, FAILED_PRECONDITION or UNAVAILABLE when version is None.
    kind: ErrorKind | None = None
    message: str = ""


class Follower:
    def __init__(self, remote: RemoteModel, cache_root: pathlib.Path, keep: int,
                 emit_status: Callable[[StoreStatus], object]) -> None:
        self.remote = remote
        self.model_dir = cache_root / remote.model
        self.keep = keep
        self.emit_status = emit_status
        # Replaced whole under the lock, never mutated: the download thread and the loop both
        # update it, and what was emitted stays as it was.
        self.status = StoreStatus(remote.uri())
        self._status_lock = threading.Lock()
        self.serving: int | None = None
        # Versions whose download failed for good (integrity, malformed): not retried by the
        # watch; an explicit request retries. Network failures are retried on the next look.
        self.failed: dict[int, str] = {}
        self._last_progress = 0.0
        # When the download under way last brought bytes (time.monotonic()): the follower's loop
        # gives up on one that stalls where the download's own checks cannot see.
        self.progress_at = time.monotonic()
        download.clean_partial(self.model_dir)
        self._update(cached_versions=self._cached())

    def _cached(self) -> tuple[int, ...]:
        return tuple(cache.cached_versions(self.model_dir))

    def _update(self, **changes: object) -> None:
        with self._status_lock:
            self.status = replace(self.status, **changes)  # type: ignore[arg-type]

    def _publish_status(self) -> None:
        self.emit_status(self.status)

    def look(self, wanted: int | None, *, explicit: bool) -> Outcome | Needs:
        """What `wanted` (None: the store's target) needs: an Outcome when it is in the cache
        or cannot be had, Needs when it must be downloaded first (runtime/store_follower.py runs the
        download off its loop, so a cached target never waits behind one)."""
        if wanted is not None and wanted in cache.cached_versions(self.model_dir):
            return Outcome(wanted)  # already here: a rollback needs no network
        try:
            target = wanted if wanted is not None else self.remote.target()
            self._update(checked_at=time.time())
        except StoreError as e:
            return self._failed(None, _reason(e), retry=isinstance(e, StoreUnreachable))
        if target is None:
            self._update(error=f"{self.remote.uri()} holds no published version", failed_version=0)
            self._publish_status()
            return Outcome(None, ErrorKind.NOT_FOUND, self.status.error)
        if wanted is None:
            self._update(target_version=target)
        if target in self.failed and not explicit:
            return Outcome(None, ErrorKind.FAILED_PRECONDITION, self.failed[target])
        if wanted is None and target in cache.cached_versions(self.model_dir):
            try:
                stale = self._stale(target)
            except StoreError as e:
                return self._failed(None, _reason(e), retry=isinstance(e, StoreUnreachable))
            if stale is not None:
                return stale
        if target not in cache.cached_versions(self.model_dir):
            return Needs(target)
        return self._arrived(target)

    def _stale(self, version: int) -> Outcome | Needs | None:
        """The cache is keyed by what the marker vouches for, not by the number alone: a number
        reused after the bucket was re-created names other bytes. A stale copy nobody serves is
        replaced; the one this replica serves cannot be (its workers map it), so that is an
        error for the status and the logs, never a silent split of the fleet."""
        marker = self.remote.marker(version)
        cached = cache.manifest_sha256(self.model_dir, version)
        if marker is None or cached is None or cached == marker.manifest_sha256:
            return None
        log.warning("store_cache_stale", version=version, cached_sha256=cached, store_sha256=marker.manifest_sha256,
                    serving=self.serving == version)
        if self.serving == version:
            return self._failed(version, f"the store's version {version} (manifest sha256 {marker.manifest_sha256}) "
                                f"is not the version {version} this replica serves (manifest sha256 {cached}): "
                                "a version number was reused; publish under a new number", retry=False,
                                prefix=False)
        cache.evict(self.model_dir, version)
        self._update(cached_versions=self._cached())
        return Needs(version)

    def fetch(self, version: int) -> BaseException | None:
        """Downloads `version` (in the download thread); the error, if any, for finish()."""
        try:
            self._download(version)
        except (StoreError, OSError) as e:
            return e
        return None

    def finish(self, version: int, error: BaseException | None) -> Outcome:
        """Records a download's end (on the follower's loop) and says what it gave."""
        if error is None:
            return self._arrived(version)
        if isinstance(error, NotPublished):
            return self._failed(version, _reason(error), retry=True, kind=ErrorKind.NOT_FOUND)
        if isinstance(error, StoreError):
            return self._failed(version, _reason(error), retry=isinstance(error, StoreUnreachable))
        return self._failed(version, f"writing the cache failed: {error}", retry=True)  # the disk: try again

    def sync(self, wanted: int | None, *, explicit: bool) -> Outcome:
        """look() and, when it needs one, the download: in one call (tests, the publisher's tools)."""
        found = self.look(wanted, explicit=explicit)
        if isinstance(found, Outcome):
            return found
        return self.finish(found.version, self.fetch(found.version))

    def _arrived(self, target: int) -> Outcome:
        self.failed.pop(target, None)
        # The replica has what it was asked for: an earlier failure is over, whichever version it was.
        self._update(failed_version=0, error="")
        self._prune(target)
        self._publish_status()
        return Outcome(target)

    def _download(self, version: int) -> None:
        log.info("store_download_start", version=version, uri=self.remote.uri())
        started = time.monotonic()
        self._update(downloading_version=version, downloaded_bytes=0)
        self._publish_status()
        try:
            path = download.download(self.remote, version, self.model_dir, progress=self._progress)
        finally:
            self._update(downloading_version=0, downloaded_bytes=0, download_total_bytes=0)
        log.info("store_download_done", version=version, path=str(path),
                 seconds=round(time.monotonic() - started, 3))

    def _progress(self, done: int, total: int) -> None:
        self._update(downloaded_bytes=done, download_total_bytes=total)
        now = self.progress_at = time.monotonic()
        if now - self._last_progress >= PROGRESS_EVERY:
            self._last_progress = now
            self._publish_status()

    def _failed(self, version: int | None, reason: str, *, retry: bool, kind: ErrorKind | None = None,
                prefix: bool = True) -> Outcome:
        """Records a failure; `retry`: transient (network, disk), so the next look tries again."""
        message = reason
        # An error about no version (the store unreachable) is not reported under an old one.
        if version is not None:
            message = f"version {version} not downloaded: {message}" if prefix else message
            if not retry:
                self.failed[version] = message
        self._update(failed_version=version or 0, error=message)
        log.warning("store_download_failed" if version is not None else "store_check_failed",
                    version=version, error=message)
        self._update(cached_versions=self._cached())
        self._publish_status()
        return Outcome(None, kind or (ErrorKind.UNAVAILABLE if retry else ErrorKind.FAILED_PRECONDITION), message)

    def _prune(self, target: int) -> None:
        protect = {target} | ({self.serving} if self.serving is not None else set())
        for version in sorted(protect, key=lambda v: v == self.serving):
            cache.touch(self.model_dir, version)  # the serving version counts as the most recent
        removed = cache.prune(self.model_dir, self.keep, protect)
        if removed:
            log.info("store_cache_pruned", removed=removed)
        self._update(cached_versions=self._cached())

    def set_serving(self, version: int) -> None:
        self.serving = version
        self._prune(self.status.target_version or version)
        self._publish_status()


def _reason(e: StoreError) -> str:
    return f"store unreachable: {e}" if isinstance(e, StoreUnreachable) else str(e)
