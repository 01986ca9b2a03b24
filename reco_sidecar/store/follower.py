"""Follows the store for one model: finds the version replicas should serve (the CURRENT
pointer, else the newest published), downloads it into the cache and says so. It runs in
its own process (store/follow_process.py), never in the supervisor's loop or a worker."""

from __future__ import annotations

import pathlib
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
        # Replaced, never mutated: what was emitted stays as it was.
        self.status = StoreStatus(remote.uri())
        self.serving: int | None = None
        # Versions whose download failed for good (integrity, malformed): not retried by the
        # watch; an explicit request retries. Network failures are retried on the next look.
        self.failed: dict[int, str] = {}
        self._last_progress = 0.0
        download.clean_partial(self.model_dir)
        self._update(cached_versions=self._cached())

    def _cached(self) -> tuple[int, ...]:
        return tuple(cache.cached_versions(self.model_dir))

    def _update(self, **changes: object) -> None:
        self.status = replace(self.status, **changes)  # type: ignore[arg-type]

    def _publish_status(self) -> None:
        self.emit_status(self.status)

    def sync(self, wanted: int | None, *, explicit: bool) -> Outcome:
        """Brings `wanted` (None: the store's target) into the cache."""
        if wanted is not None and wanted in cache.cached_versions(self.model_dir):
            return Outcome(wanted)  # already here: a rollback needs no network
        try:
            target = wanted if wanted is not None else self.remote.target()
            self._update(checked_at=time.time())
        except StoreError as e:
            return self._failed(None, _reason(e), retry=isinstance(e, StoreUnreachable))
        if target is None:
            self._update(error=f"{self.remote.uri()} holds no published version")
            self._publish_status()
            return Outcome(None, ErrorKind.NOT_FOUND, self.status.error)
        if wanted is None:
            self._update(target_version=target)
        if target in self.failed and not explicit:
            return Outcome(None, ErrorKind.FAILED_PRECONDITION, self.failed[target])
        if target not in cache.cached_versions(self.model_dir):
            try:
                self._download(target)
            except NotPublished as e:
                return self._failed(target, _reason(e), retry=True, kind=ErrorKind.NOT_FOUND)
            except StoreError as e:
                return self._failed(target, _reason(e), retry=isinstance(e, StoreUnreachable))
            except OSError as e:  # the cache's disk, not the store: worth another try later
                return self._failed(target, f"writing the cache failed: {e}", retry=True)
        self.failed.pop(target, None)
        if self.status.failed_version == target or self.status.failed_version == 0:
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
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_EVERY:
            self._last_progress = now
            self._publish_status()

    def _failed(self, version: int | None, reason: str, *, retry: bool, kind: ErrorKind | None = None) -> Outcome:
        """Records a failure; `retry`: transient (network, disk), so the next look tries again."""
        message = reason
        if version is not None:
            message = f"version {version} not downloaded: {message}"
            if not retry:
                self.failed[version] = message
            self._update(failed_version=version)
        self._update(error=message)
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
