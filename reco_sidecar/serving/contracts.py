"""What the serving layer needs from the process that runs it, and what it gets back: the
protocols the runtime implements (reloading across the workers, the pool's addresses) and
the outcomes it reports. Serving depends on these shapes only, never on the runtime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from reco_sidecar.common.errors import FailedPrecondition
from reco_sidecar.common.versions import VersionSpec


@dataclass(frozen=True)
class ReloadOutcome:
    old_version: int
    new_version: int
    load_seconds: float
    workers: int


@dataclass(frozen=True)
class ExperimentsOutcome:
    generation: int
    experiments: int
    workers: int


class Reloader(Protocol):
    """Blocking; the service calls it from a thread, off the event loop."""

    def reload(self, model: str, version: VersionSpec) -> ReloadOutcome: ...


def no_experiments_file() -> ExperimentsOutcome:
    raise FailedPrecondition("this sidecar was started without --experiments", field="experiments")


@dataclass(frozen=True)
class RulesOutcome:
    generation: int
    rule_sets: int
    workers: int


def no_rules_file() -> RulesOutcome:
    raise FailedPrecondition("this sidecar was started without --rules", field="rules")


@dataclass(frozen=True)
class WorkerAddress:
    pid: int
    address: str


class Topology(Protocol):
    """Where this worker and its siblings listen."""

    def me(self) -> WorkerAddress: ...
    def workers(self) -> list[WorkerAddress]: ...
    def shared_address(self) -> str: ...
