"""Downloading a published version into the local cache: into a hidden directory, every
byte hashed as it arrives and checked against the manifest (whose own checksum the marker
gives), fsynced, then renamed into place. A reader of the cache never sees a partial or
unverified version; a failure leaves nothing behind."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import time
import uuid
from collections.abc import Callable
from typing import Any

from reco_sidecar.artifact import layout, manifest
from reco_sidecar.artifact.durable import fsync_path
from reco_sidecar.common.errors import ArtifactError
from reco_sidecar.store import paced
from reco_sidecar.store.errors import IntegrityError, NotPublished, StoreError, StoreUnreachable
from reco_sidecar.store.remote import RemoteModel, translated

CHUNK = 1 << 20
DOWNLOAD_PREFIX = f"{layout.TMP_PREFIX}download-"
# Room left free on the cache's file system beyond the version itself.
DISK_HEADROOM = 64 * 1024 * 1024
# A manifest is a few KiB; a marker claiming more is not to be believed (nor downloaded).
MAX_MANIFEST_BYTES = 16 * 1024 * 1024

# A whole version's download must end within DEADLINE_BASE plus its size at MIN_AVERAGE_RATE;
# paced.py also fails any PROGRESS_WINDOW that brings too few bytes. A store (or proxy) that
# trickles bytes cannot hold the follower for hours.
DEADLINE_BASE = 60.0
MIN_AVERAGE_RATE = 1024 * 1024  # bytes per second

Progress = Callable[[int, int], None]  # (bytes so far, total bytes)


def deadline_for(total_bytes: int) -> float:
    """The time.monotonic() by which a download of `total_bytes` started now must end."""
    return time.monotonic() + DEADLINE_BASE + total_bytes / MIN_AVERAGE_RATE


def download(remote: RemoteModel, version: int, model_dir: pathlib.Path, *,
             progress: Progress | None = None) -> pathlib.Path:
    """`<model_dir>/<version>`, downloaded and verified unless it is there already."""
    final = model_dir / str(version)
    if (final / layout.MANIFEST).is_file():
        return final
    marker = remote.marker(version)
    if marker is None:
        raise NotPublished(f"{remote.uri(remote.location.version_prefix(remote.model, version))} is not published "
                           "(no marker)")
    if marker.manifest_bytes > MAX_MANIFEST_BYTES:
        raise StoreError(f"{remote.uri(remote.location.marker_key(remote.model, version))} claims a manifest of "
                         f"{marker.manifest_bytes} bytes (at most {MAX_MANIFEST_BYTES})")
    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = model_dir / f"{DOWNLOAD_PREFIX}{version}-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        man_key = remote.location.file_key(remote.model, version, layout.MANIFEST)
        man_bytes = _fetch(remote, man_key, tmp / f"{layout.TMP_PREFIX}{layout.MANIFEST}",
                           marker.manifest_bytes, marker.manifest_sha256, "the marker", deadline_for(0))
        man = _parse_manifest(man_bytes, remote, version, man_key)
        total = sum(e.bytes for e in man.files.values()) + len(man_bytes)
        deadline = deadline_for(total)
        _check_space(model_dir, total)
        done = len(man_bytes)
        if progress is not None:
            progress(done, total)
        for name, entry in sorted(man.files.items()):
            key = remote.location.file_key(remote.model, version, name)
            _fetch(remote, key, tmp / name, entry.bytes, entry.sha256, "the manifest", deadline,
                   _offset(progress, done, total))
            done += entry.bytes
        # The manifest goes in last: it is what makes a directory a complete version.
        os.rename(tmp / f"{layout.TMP_PREFIX}{layout.MANIFEST}", tmp / layout.MANIFEST)
        for p in tmp.iterdir():
            fsync_path(p)
        fsync_path(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / layout.MANIFEST).is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another downloader finished first
        fsync_path(model_dir)
        return final
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _offset(progress: Progress | None, base: int, total: int) -> Callable[[int], None] | None:
    """Progress of one file as progress of the whole version."""
    if progress is None:
        return None
    return lambda n: progress(base + n, total)


def _parse_manifest(data: bytes, remote: RemoteModel, version: int, key: str) -> manifest.Manifest:
    try:
        raw: Any = json.loads(data)
        if not isinstance(raw, dict):
            raise ArtifactError(remote.uri(key), "manifest.json is not a JSON object")
        man = manifest.parse(raw, remote.uri(key))
    except (ValueError, ArtifactError) as e:
        raise StoreError(f"{remote.uri(key)}: {e}") from None
    if man.version != version or man.name != remote.model:
        raise StoreError(f"{remote.uri(key)} describes {man.name!r} version {man.version}, "
                         f"not {remote.model!r} version {version}")
    return man


def _check_space(model_dir: pathlib.Path, total: int) -> None:
    free = shutil.disk_usage(model_dir).free
    if free < total + DISK_HEADROOM:
        raise StoreError(f"the cache {model_dir} has {free} bytes free; the version needs {total} "
                         f"(plus {DISK_HEADROOM} headroom)")


def _fetch(remote: RemoteModel, key: str, dest: pathlib.Path, size: int, sha256: str, vouched_by: str,
           deadline: float, progress: Callable[[int], None] | None = None) -> bytes:
    """Streams one object to `dest`, hashing as it goes; returns its bytes when small (the manifest)."""
    h = hashlib.sha256()
    got = 0
    name = key.rsplit("/", 1)[-1]
    small = bytearray() if size <= MAX_MANIFEST_BYTES and name == layout.MANIFEST else None
    with translated(f"downloading {remote.uri(key)}"):
        obj = remote.client.get_object(Bucket=remote.location.bucket, Key=key)
        body = obj["Body"]
        try:
            stored = obj.get("ContentLength")
            if stored is not None and stored != size:
                raise IntegrityError(f"{remote.uri(key)}: the store holds {stored} bytes, {vouched_by} says "
                                     f"{size} ({name})")
            with dest.open("wb") as out:
                # Read one byte past the expected size: a larger object is refused, not truncated.
                for chunk in paced.chunks(body, size, remote.uri(key), deadline, chunk=CHUNK):
                    got += len(chunk)
                    if got > size:
                        break
                    h.update(chunk)
                    out.write(chunk)
                    if small is not None:
                        small.extend(chunk)
                    if progress is not None:
                        progress(got)
        finally:
            body.close()
    if got > size:
        raise IntegrityError(f"{remote.uri(key)}: more than {size} bytes, {vouched_by} says {size} ({name})")
    if got < size:  # the length matched, so the connection broke off
        raise StoreUnreachable(f"downloading {remote.uri(key)}: the connection ended after {got} of {size} bytes")
    if h.hexdigest() != sha256:
        raise IntegrityError(f"{remote.uri(key)}: sha256 {h.hexdigest()} differs from {vouched_by}'s "
                             f"{sha256} ({name})")
    return bytes(small) if small is not None else b""


def clean_partial(model_dir: pathlib.Path) -> None:
    """Removes downloads a killed process left behind (hidden, so never read as versions)."""
    if model_dir.is_dir():
        for entry in model_dir.iterdir():
            if entry.name.startswith(DOWNLOAD_PREFIX):
                shutil.rmtree(entry, ignore_errors=True)
