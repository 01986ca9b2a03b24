"""Reloading inside one process (an embedded server, or a servicer under test): resolve,
prepare, then commit — the same steps the supervisor runs across all workers."""

from __future__ import annotations

import threading

from reco_sidecar.common.versions import VersionSpec
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
            number = manager.resolve(version)
            current = manager.current
            old = current.version if current is not None else 0
            loaded = manager.prepare(number)
            manager.commit(number)
            return ReloadOutcome(old, number, loaded.load_seconds, 1)
