"""The local cache of downloaded versions: an ordinary model root (`<cache>/<model>/<version>/`),
so the loader, the reload transaction and a worker restart read it like any other."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
import shutil
import uuid
from collections.abc import Iterable

from reco_sidecar.artifact import layout, version_dirs
from reco_sidecar.artifact.manifest import MAX_MANIFEST_BYTES


def cached_versions(model_dir: pathlib.Path) -> list[int]:
    return version_dirs.list_versions(model_dir)


def manifest_sha256(model_dir: pathlib.Path, version: int) -> str | None:
    """The sha256 of a cached version's manifest.json: what the store's marker vouches for."""
    try:
        with (model_dir / str(version) / layout.MANIFEST).open("rb") as f:
            return hashlib.sha256(f.read(MAX_MANIFEST_BYTES + 1)).hexdigest()
    except OSError:
        return None


def evict(model_dir: pathlib.Path, version: int) -> None:
    """Removes one version: out of the visible names with one rename, then deleted."""
    hidden = model_dir / f"{layout.TMP_PREFIX}evict-{version}-{uuid.uuid4().hex}"
    try:
        (model_dir / str(version)).rename(hidden)
    except OSError:
        return
    shutil.rmtree(hidden, ignore_errors=True)


def touch(model_dir: pathlib.Path, version: int) -> None:
    """Marks a version as just used (a target or the serving one): the cache keeps the most
    recently used, so after a rollback the version rolled back from stays for a roll forward."""
    with contextlib.suppress(OSError):
        os.utime(model_dir / str(version))


def prune(model_dir: pathlib.Path, keep: int, protect: Iterable[int]) -> list[int]:
    """Keeps the `keep` most recently used versions and every protected one (serving, target);
    removes the rest and returns them. A version leaves the visible names with one rename
    before it is deleted, so nobody sees a half-deleted version. Workers still mapping a
    removed version keep their pages until they unmap it."""
    protected = set(protect)
    by_use = sorted(cached_versions(model_dir), key=lambda v: (_used_at(model_dir, v), v), reverse=True)
    doomed = sorted(v for v in by_use[keep:] if v not in protected)
    for v in doomed:
        evict(model_dir, v)
    return doomed


def _used_at(model_dir: pathlib.Path, version: int) -> int:
    try:
        return (model_dir / str(version)).stat().st_mtime_ns
    except OSError:
        return 0
