"""The experiments one worker serves, swapped whole when a new file is rolled out, and the
per-arm counters since that rollout, summed over every worker (counters.py)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from reco_sidecar.experiments.config import ExperimentSet
from reco_sidecar.experiments.counters import COLUMN, SharedCounters


@dataclass
class ArmCounts:
    requests: int = 0  # answers served by this arm
    overrides: int = 0  # of those, arm named by the request (QA)
    shadow_scored: int = 0  # a shadow arm's rankings compared with the served one
    shadow_dropped: int = 0  # shadow work left undone because its queue was full
    overlap_sum: float = 0.0
    rank_correlation_sum: float = 0.0
    rank_correlation_count: int = 0


@dataclass
class Snapshot:
    experiments: ExperimentSet
    generation: int
    counts: dict[tuple[str, str], ArmCounts] = field(default_factory=dict)


class LiveExperiments:
    def __init__(self, experiments: ExperimentSet, generation: int, counters: SharedCounters | None = None,
                 slot: int = 0) -> None:
        self._lock = threading.Lock()
        self._counters = counters or SharedCounters(1)
        self._slot = slot
        self._set(experiments, generation)

    @property
    def current(self) -> ExperimentSet:
        return self._experiments

    @property
    def generation(self) -> int:
        return self._generation

    def replace(self, experiments: ExperimentSet, generation: int) -> None:
        """Serve `experiments` from now on; counters start again (they describe one rollout)."""
        with self._lock:
            self._set(experiments, generation)

    def _set(self, experiments: ExperimentSet, generation: int) -> None:
        self._experiments, self._generation = experiments, generation
        # Positions in the file: the same in every worker, since every worker has the same file.
        self._index = {(e.name, a.name): (i, j) for i, e in enumerate(experiments.experiments)
                       for j, a in enumerate(e.arms)}
        self._counters.start(self._slot, generation)

    def _add(self, experiment: str, arm: str, **values: float) -> None:
        with self._lock:
            where = self._index.get((experiment, arm))
            if where is None:  # counted after a rollout removed it
                return
            for name, value in values.items():
                self._counters.add(self._slot, *where, name, value)

    def served(self, experiment: str, arm: str, *, overridden: bool) -> None:
        self._add(experiment, arm, requests=1, overrides=float(overridden))

    def shadow(self, experiment: str, arm: str, overlap: float, correlation: float | None) -> None:
        if correlation is None:
            self._add(experiment, arm, shadow_scored=1, overlap_sum=overlap)
        else:
            self._add(experiment, arm, shadow_scored=1, overlap_sum=overlap, rank_correlation_sum=correlation,
                      rank_correlation_count=1)

    def shadow_dropped(self, experiment: str, arm: str) -> None:
        self._add(experiment, arm, shadow_dropped=1)

    def snapshot(self) -> Snapshot:
        with self._lock:
            experiments, generation = self._experiments, self._generation
            totals = self._counters.totals(generation)
        counts = {}
        for i, e in enumerate(experiments.experiments):
            for j, a in enumerate(e.arms):
                v = totals[i, j]
                counts[(e.name, a.name)] = ArmCounts(
                    requests=int(v[COLUMN["requests"]]), overrides=int(v[COLUMN["overrides"]]),
                    shadow_scored=int(v[COLUMN["shadow_scored"]]), shadow_dropped=int(v[COLUMN["shadow_dropped"]]),
                    overlap_sum=float(v[COLUMN["overlap_sum"]]),
                    rank_correlation_sum=float(v[COLUMN["rank_correlation_sum"]]),
                    rank_correlation_count=int(v[COLUMN["rank_correlation_count"]]))
        return Snapshot(experiments, generation, counts)
