"""The watch, a Source in TF Serving's sense: it looks at what could serve (the model
folders under the root, the experiments file; with a model store, what the follower found)
and emits reload requests; the reload transactions decide the rest. The one place that
leaves an operator's rollback pin alone."""

from __future__ import annotations

import pathlib
from collections.abc import Iterable
from dataclasses import dataclass

from reco_sidecar.artifact import version_dirs
from reco_sidecar.common import logs
from reco_sidecar.common.versions import LATEST, VersionSpec
from reco_sidecar.runtime.supervisor.model_reload import Coordinator

log = logs.get(__name__)


@dataclass(frozen=True)
class ReloadWanted:
    """Reload `model` to `spec`; `pin`: whether its success pins (see Coordinator._done)."""

    model: str
    spec: VersionSpec
    pin: bool | None = None


class Watch:
    def __init__(self, model_root: pathlib.Path, every: float, *, folders: bool) -> None:
        self.model_root = model_root
        self.every = every
        # With a model store the follower watches the store; the folders are its cache.
        self.folders = folders
        self.next_look = float("inf")
        self._pin_noted: dict[str, tuple[int, int]] = {}

    def start(self, now: float) -> None:
        if self.every:
            self.next_look = now + self.every

    def due(self, now: float) -> bool:
        if now < self.next_look:
            return False
        self.next_look = now + self.every
        return True

    def look(self, models: Iterable[tuple[str, Coordinator]]) -> list[ReloadWanted]:
        """Newer complete versions under the root: one reload of `latest` per model."""
        out = []
        for name, reload in models:
            if not self.folders:
                continue
            try:
                versions = version_dirs.list_versions(self.model_root / name)
            except OSError as e:
                log.warning("watch_failed", model=name, error=str(e))
                continue
            # Any newer version not known bad: `latest` then picks the newest that verifies.
            newer = [v for v in versions if v > reload.serving and v not in reload.failed]
            if newer and self.allowed(name, reload, newer[-1]) and not reload.busy:
                log.info("watch_found_version", model=name, version=newer[-1])
                out.append(ReloadWanted(name, LATEST))
        return out

    def offered(self, name: str, reload: Coordinator, version: int) -> list[ReloadWanted]:
        """A version the store follower brought into the cache by itself."""
        if version in reload.failed:
            return []  # the watch does not retry a version that failed to load
        if version == reload.pinned or not self.allowed(name, reload, version):
            return []
        return [ReloadWanted(name, version, pin=False)]

    def allowed(self, model: str, reload: Coordinator, newer: int) -> bool:
        """False while an operator's Reload to a number pins the model: said once per newer
        version, so a rollback is never silently undone."""
        if reload.pinned is None:
            return True
        if self._pin_noted.get(model) != (reload.pinned, newer):
            self._pin_noted[model] = (reload.pinned, newer)
            log.info("watch_pinned", model=model, version=newer, pinned=reload.pinned)
        return False
