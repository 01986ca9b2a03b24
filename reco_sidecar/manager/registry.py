"""The models one process serves: a ModelManager per model name, and the default one.

Each model keeps its own versions, states and reloads; the registry only answers "which
manager does this request mean". An empty name is the configured default model, an unknown
name is NOT_FOUND naming the `model` field.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from reco_sidecar.common.errors import NotFound
from reco_sidecar.manager.manager import ModelManager


class ModelRegistry:
    def __init__(self, managers: Mapping[str, ModelManager], default: str) -> None:
        if default not in managers:
            raise ValueError(f"default model {default!r} is not among {sorted(managers)}")
        self._managers = dict(managers)
        self.default = default

    @classmethod
    def single(cls, manager: ModelManager) -> ModelRegistry:
        return cls({manager.name: manager}, manager.name)

    def get(self, name: str) -> ModelManager:
        """The manager of `name` ('' is the default model); NotFound for any other name."""
        manager = self._managers.get(name or self.default)
        if manager is None:
            raise NotFound(f"this sidecar serves no model {name!r} (it serves {', '.join(self.names)})",
                           field="model")
        return manager

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
