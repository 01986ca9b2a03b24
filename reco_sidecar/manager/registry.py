"""The models one process serves: a ModelManager per model name, and the default one.

Each model keeps its own versions, states and reloads; the registry only answers "which
manager does this request mean". An empty name is the configured default model, an unknown
name is NOT_FOUND naming the `model` field.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from reco_sidecar.common.errors import NotFound, Unavailable, echo
from reco_sidecar.manager.manager import ModelManager


class ModelRegistry:
    def __init__(self, managers: Mapping[str, ModelManager], default: str) -> None:
        if default not in managers:
            raise ValueError(f"default model {default!r} is not among {sorted(managers)}")
        self._managers = dict(managers)
        self.default = default
        # Versions an experiment arm pins, beside what each model serves: (model, version) ->
        # a manager holding that one version. Replaced whole when experiments are rolled out.
        self._arm_versions: dict[tuple[str, int], ModelManager] = {}

    @classmethod
    def single(cls, manager: ModelManager) -> ModelRegistry:
        return cls({manager.name: manager}, manager.name)

    def get(self, name: str) -> ModelManager:
        """The manager of `name` ('' is the default model); NotFound for any other name."""
        manager = self._managers.get(name or self.default)
        if manager is None:
            raise NotFound(f"this sidecar serves no model {echo(name)} (it serves {', '.join(self.names)})",
                           field="model")
        return manager

    def arm_version(self, name: str, version: int) -> ModelManager:
        manager = self._arm_versions.get((name, version))
        if manager is None:
            raise Unavailable(f"version {version} of model {name!r} is not open here", field="arm")
        return manager

    def open_arm_versions(self, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], ModelManager]:
        """Managers holding each (model, version), loaded and warmed (those already open are
        reused); raises FailedPrecondition naming nothing but the version. Serves none yet."""
        out: dict[tuple[str, int], ModelManager] = {}
        for name, version in keys:
            manager = self._arm_versions.get((name, version))
            if manager is None:
                base = self.get(name)
                manager = ModelManager(base.model_root, name, base.opener)
                manager.load(version)
            out[(name, version)] = manager
        return out

    def use_arm_versions(self, managers: Mapping[tuple[str, int], ModelManager]) -> None:
        """Serves these arm versions from now on; the others are dropped (a request still
        holding one keeps it until it ends)."""
        self._arm_versions = dict(managers)

    def __contains__(self, name: object) -> bool:
        return name in self._managers

    def __iter__(self) -> Iterator[ModelManager]:
        """Every manager, the default first, then by name."""
        yield self._managers[self.default]
        for name in sorted(self._managers):
            if name != self.default:
                yield self._managers[name]

    @property
    def names(self) -> list[str]:
        return [m.name for m in self]
