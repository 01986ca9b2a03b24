"""Reloading inside one process, for the in-process server tests use (harness/inprocess.py):
find the version, prepare, then commit, the steps the supervisor runs across all workers
(without its verification helper). The sidecar itself always reloads through the supervisor."""

from __future__ import annotations

import threading

from reco_sidecar.artifact import version_dirs
from reco_sidecar.common.errors import NotFound
from reco_sidecar.common.versions import LATEST, VersionSpec
from reco_sidecar.manager.manager import ModelManager
from reco_sidecar.manager.registry import ModelRegistry
from reco_sidecar.serving.contracts import ReloadOutcome


class LocalReloader:
    def __init__(self, models: ModelRegistry | ModelManager) -> None:
        self._models = models if isinstance(models, ModelRegistry) else ModelRegistry.single(models)
        self._lock = threading.Lock()

    def reload(self, model: str, version: VersionSpec) -> ReloadOutcome:
        with self._lock:
            manager = self._models.get(model)
            number = find_version(manager, version)
            current = manager.current
            old = current.version if current is not None else 0
            loaded = manager.prepare(number)
            manager.commit(number)
            return ReloadOutcome(old, number, loaded.load_seconds, 1)


def find_version(manager: ModelManager, version: VersionSpec) -> int:
    """LATEST to the newest complete version; a number to itself if it exists."""
    model_dir = manager.model_root / manager.name
    if version is LATEST:
        latest = version_dirs.latest_version(model_dir)
        if latest is None:
            raise NotFound(f"model {manager.name!r} has no complete version under {manager.model_root}",
                           field="model")
        return latest
    if version not in version_dirs.list_versions(model_dir):
        raise NotFound(f"model {manager.name!r} has no complete version {version}", field="version")
    return version
