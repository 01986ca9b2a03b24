"""Reloading inside one process (an embedded server, or a servicer under test): resolve,
prepare, then commit — the same steps the supervisor runs across all workers."""

from __future__ import annotations

import threading

from reco_sidecar.common.versions import VersionSpec
from reco_sidecar.manager.manager import ModelManager
from reco_sidecar.serving.service import ReloadOutcome


class LocalReloader:
    def __init__(self, manager: ModelManager) -> None:
        self._manager = manager
        self._lock = threading.Lock()

    def reload(self, version: VersionSpec) -> ReloadOutcome:
        with self._lock:
            number = self._manager.resolve(version)
            current = self._manager.current
            old = current.version if current is not None else 0
            model = self._manager.prepare(number)
            self._manager.commit(number)
            return ReloadOutcome(old, number, model.load_seconds, 1)
