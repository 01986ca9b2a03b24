"""Publishing a local version to the store, atomically: every file first, the manifest
next, and the small marker last; followers see a version only through its marker."""

from __future__ import annotations

import hashlib
import os
import pathlib
import socket
from collections.abc import Callable

from reco_sidecar.artifact import layout, loader
from reco_sidecar.common import logs
from reco_sidecar.store.errors import StoreError
from reco_sidecar.store.remote import Marker, RemoteModel, now, translated

log = logs.get(__name__)
MULTIPART_THRESHOLD = 64 * 1024 * 1024


def publish(remote: RemoteModel, version_dir: pathlib.Path, *, promote: bool = False,
            progress: Callable[[str, int], None] | None = None) -> int:
    """Uploads `version_dir` as its own version number and returns it; with `promote`, points
    CURRENT at it afterwards. Refuses a version that does not verify or is already published."""
    from boto3.s3.transfer import TransferConfig

    manifest = loader.verify(version_dir)  # never publish bytes the manifest does not vouch for
    if manifest.name != remote.model:
        raise StoreError(f"{version_dir} holds model {manifest.name!r}, not {remote.model!r}")
    version = manifest.version
    if remote.marker(version) is not None:
        raise StoreError(f"{remote.uri(remote.location.version_prefix(remote.model, version))} is already "
                         "published; versions are immutable (train a new one)")
    remote.claim(version, f"{socket.gethostname()}:{os.getpid()}")
    config = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD)
    names = sorted(manifest.files)
    for name in [*names, layout.MANIFEST]:
        key = remote.location.file_key(remote.model, version, name)
        with translated(f"uploading {remote.uri(key)}"):
            remote.client.upload_file(str(version_dir / name), remote.location.bucket, key, Config=config)
        if progress is not None:
            progress(name, (version_dir / name).stat().st_size)
    manifest_bytes = (version_dir / layout.MANIFEST).read_bytes()
    remote.write_marker(Marker(version, hashlib.sha256(manifest_bytes).hexdigest(), len(manifest_bytes), now()))
    log.info("store_published", model=remote.model, version=version, uri=remote.uri(), files=len(names) + 1)
    if promote:
        remote.write_pointer(version)
        log.info("store_promoted", model=remote.model, version=version)
    return version
