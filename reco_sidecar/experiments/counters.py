"""Per-arm counters shared by every worker: one row per worker slot in an anonymous shared
mapping made by the supervisor before it forks, so ListExperiments on any worker reports the
whole sidecar's counts. Each worker writes only its own row (under its own lock), so no
write is lost between processes; a row is tagged with the experiments generation it counts,
and a reader sums the rows of the generation it serves."""

from __future__ import annotations

import mmap

import numpy as np

from reco_sidecar.experiments.config import MAX_ARMS, MAX_EXPERIMENTS

FIELDS = ("requests", "overrides", "shadow_scored", "shadow_dropped", "overlap_sum", "rank_correlation_sum",
          "rank_correlation_count")
COLUMN = {name: i for i, name in enumerate(FIELDS)}


class SharedCounters:
    def __init__(self, workers: int) -> None:
        self.workers = workers
        cells = workers * (1 + MAX_EXPERIMENTS * MAX_ARMS * len(FIELDS))
        # MAP_SHARED and anonymous: inherited by every forked worker, the same pages.
        self._buffer = mmap.mmap(-1, cells * 8, flags=mmap.MAP_SHARED)
        flat = np.frombuffer(self._buffer, dtype=np.float64).reshape(workers, -1)
        # float64 counts are exact up to 2**53.
        self._generation = flat[:, 0]
        self._cells = flat[:, 1:].reshape(workers, MAX_EXPERIMENTS, MAX_ARMS, len(FIELDS))

    def start(self, slot: int, generation: int) -> None:
        """Slot `slot` counts `generation` from now on (from zero if it is a new one)."""
        if int(self._generation[slot]) != generation:
            self._cells[slot] = 0.0
            self._generation[slot] = generation

    def add(self, slot: int, experiment: int, arm: int, field: str, value: float = 1.0) -> None:
        self._cells[slot, experiment, arm, COLUMN[field]] += value

    def totals(self, generation: int) -> np.ndarray:
        """(experiment, arm, field) summed over the workers counting `generation`."""
        rows = self._generation == generation
        return np.asarray(self._cells[rows].sum(axis=0))
