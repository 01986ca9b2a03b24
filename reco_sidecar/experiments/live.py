"""The experiments one worker serves, swapped whole when a new file is rolled out, and this
worker's per-arm counters since that rollout (the metrics sum every worker's)."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field

from reco_sidecar.experiments.config import ExperimentSet

COUNTERS = ("requests", "overrides", "shadow_scored", "shadow_dropped", "overlap_sum", "rank_correlation_sum")


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
    def __init__(self, experiments: ExperimentSet, generation: int) -> None:
        self._lock = threading.Lock()
        self._experiments = experiments
        self._generation = generation
        self._counts: defaultdict[tuple[str, str], ArmCounts] = defaultdict(ArmCounts)

    @property
    def current(self) -> ExperimentSet:
        return self._experiments

    @property
    def generation(self) -> int:
        return self._generation

    def replace(self, experiments: ExperimentSet, generation: int) -> None:
        """Serve `experiments` from now on; counters start again (they describe one rollout)."""
        with self._lock:
            self._experiments, self._generation = experiments, generation
            self._counts = defaultdict(ArmCounts)

    def served(self, experiment: str, arm: str, *, overridden: bool) -> None:
        with self._lock:
            c = self._counts[(experiment, arm)]
            c.requests += 1
            c.overrides += int(overridden)

    def shadow(self, experiment: str, arm: str, overlap: float, correlation: float | None) -> None:
        with self._lock:
            c = self._counts[(experiment, arm)]
            c.shadow_scored += 1
            c.overlap_sum += overlap
            if correlation is not None:
                c.rank_correlation_sum += correlation
                c.rank_correlation_count += 1

    def shadow_dropped(self, experiment: str, arm: str) -> None:
        with self._lock:
            self._counts[(experiment, arm)].shadow_dropped += 1

    def snapshot(self) -> Snapshot:
        with self._lock:
            counts = {k: ArmCounts(**vars(v)) for k, v in self._counts.items()}
            return Snapshot(self._experiments, self._generation, counts)
