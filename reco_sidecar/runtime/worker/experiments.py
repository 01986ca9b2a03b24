"""The worker's side of an experiments rollout (supervisor/rollout.py): prepare parses the file
and opens the versions its arms pin beside what serves; commit swaps both at once; abort
drops what a prepare opened, also one still running. Runs on the control apply thread, in
the order the messages arrived, like model reloads."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from reco_sidecar.common import logs
from reco_sidecar.common.errors import RecoError
from reco_sidecar.common.exit_codes import ExitCode
from reco_sidecar.experiments import checks
from reco_sidecar.experiments.config import ExperimentSet
from reco_sidecar.experiments.live import LiveExperiments
from reco_sidecar.manager.manager import ModelManager
from reco_sidecar.manager.registry import ModelRegistry
from reco_sidecar.runtime import payload
from reco_sidecar.runtime import wire as m

log = logs.get(__name__)


class _PinFailed(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class _Prepared:
    experiments: ExperimentSet
    pinned: dict[tuple[str, int], ModelManager]


class ExperimentsApplier:
    def __init__(self, registry: ModelRegistry, live: LiveExperiments, send: Callable[[m.ToSupervisor], bool]
                 ) -> None:
        self._registry = registry
        self._live = live
        self._send = send
        self._lock = threading.Lock()
        self._prepared: dict[int, _Prepared] = {}
        self._aborted: set[int] = set()

    def abort(self, generation: int) -> None:
        """Called on the receiving thread at once, so a prepare still running is dropped."""
        with self._lock:
            self._aborted.add(generation)
            self._prepared.pop(generation, None)

    def apply(self, message: m.PrepareExperiments | m.CommitExperiments | m.SetExperiments) -> None:
        match message:
            case m.PrepareExperiments(generation, file, syntax):
                self._prepare(generation, file, syntax)
            case m.CommitExperiments(generation):
                self._commit(generation)
            case m.SetExperiments(generation, file, syntax):
                try:
                    self._swap(generation, self._open(file, syntax))
                except Exception:
                    # The pool serves this file; a worker that cannot must not serve another:
                    # exit, and the restart boots with it.
                    log.exception("experiments_unusable", generation=generation)
                    os._exit(ExitCode.WORKERS_FAILED)

    def _open(self, file: m.Payload, syntax: str) -> _Prepared:
        """Raises _PinFailed naming the arm when a pinned version cannot be opened."""
        experiments = checks.parse_sent(payload.read(file).decode("utf-8"), syntax)
        pinned: dict[tuple[str, int], ModelManager] = {}
        for model, version in checks.arm_versions(experiments):
            try:
                pinned.update(self._registry.open_arm_versions([(model, version)]))
            except Exception as e:  # an odd pinned version must fail the rollout, not the worker
                error = str(e) if isinstance(e, RecoError) else f"{type(e).__name__}: {e}"
                raise _PinFailed(checks.arm_field(experiments, model, version),
                                 f"version {version} of model {model!r} cannot be served: {error}") from e
        return _Prepared(experiments, pinned)

    def _prepare(self, generation: int, file: m.Payload, syntax: str) -> None:
        with self._lock:
            if generation in self._aborted:
                return
        try:
            prepared = self._open(file, syntax)
        except _PinFailed as e:
            self._send(m.ExperimentsPrepareFailed(generation, e.message[:4000], e.field))
            return
        except Exception as e:  # the supervisor validated the text: a bug, reported, not fatal
            log.exception("experiments_prepare_failed", generation=generation)
            self._send(m.ExperimentsPrepareFailed(generation, f"{type(e).__name__}: {e}"[:4000], "experiments"))
            return
        with self._lock:
            if generation in self._aborted:
                return
            self._prepared[generation] = prepared
        self._send(m.ExperimentsPrepared(generation))

    def _commit(self, generation: int) -> None:
        with self._lock:
            prepared = self._prepared.pop(generation, None)
        if prepared is None:
            log.error("experiments_commit_unprepared", generation=generation)
            return
        self._swap(generation, prepared)

    def _swap(self, generation: int, prepared: _Prepared) -> None:
        self._registry.use_arm_versions(prepared.pinned)
        self._live.replace(prepared.experiments, generation)
        log.info("experiments_applied", generation=generation,
                 experiments=[e.name for e in prepared.experiments.experiments],
                 pinned=[f"{model}@{version}" for model, version in prepared.pinned])
        self._send(m.ExperimentsApplied(generation))
