"""A rule set resolved against one loaded model version: item ids as rows, the cap field as
integer codes. Built once per (rules generation, model version) and shared by every request."""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import numpy as np

from reco_sidecar.engine.model import Model
from reco_sidecar.ranking.rules import RuleSet, RulesFile


@dataclass(frozen=True)
class Compiled:
    rules: RuleSet
    # Pins the model knows, by position (1-based); items it does not know are skipped.
    pins: dict[int, int]
    # Boost or bury factor per item row.
    factors: dict[int, float]
    # Rows scored directly whatever their rank: pins and boosts (retrieval cannot miss them).
    explicit: np.ndarray
    cap_codes: np.ndarray | None
    created_at: np.ndarray | None
    # Unit item factor vectors (float32, per item row) when MMR needs cosines: one per version.
    units: np.ndarray | None = None
    # How many distinct values the cap field has (its codes are 0..cap_values - 1).
    cap_values: int = 0

    @property
    def outside_factor(self) -> float:
        """The largest factor an item retrieval did not return can have (freshness only)."""
        f = self.rules.freshness
        return max(1.0, f.boost) if f is not None and self.created_at is not None else 1.0


@dataclass(frozen=True)
class ForModel:
    """What one rules file means for one model version."""

    hidden: np.ndarray
    sets: dict[tuple[str, str], Compiled | None]  # (experiment, arm) -> compiled rule set

    def find(self, experiment: str, arm: str) -> Compiled | None:
        """The arm's own rule set if the file has one (None: it re-ranks nothing), else the model's."""
        if arm and (experiment, arm) in self.sets:
            return self.sets[(experiment, arm)]
        return self.sets.get(("", ""))


def compile_set(model: Model, rules: RuleSet) -> Compiled:
    pins: dict[int, int] = {}
    for pin in rules.pins:
        row = model.items.row(pin.item)
        if row is not None:
            pins[pin.position] = row
    factors: dict[int, float] = {}
    for boost in rules.boosts:
        row = model.items.row(boost.item)
        if row is not None:
            factors[row] = boost.factor
    explicit = np.unique(np.fromiter([*pins.values(), *factors], dtype=np.int64))
    catalog = model.catalog
    field = rules.diversity.cap_field
    codes = catalog.field_codes(field) if catalog is not None and field else None
    created = catalog.created_at if catalog is not None else None
    units = unit_vectors(model) if rules.diversity.mmr_lambda > 0 else None
    values = int(codes.max()) + 1 if codes is not None and len(codes) else 0
    return Compiled(rules, pins, factors, explicit, codes, created, units, values)


_UNITS: weakref.WeakKeyDictionary[Model, np.ndarray] = weakref.WeakKeyDictionary()
_UNITS_LOCK = threading.Lock()


def unit_vectors(model: Model) -> np.ndarray:
    """The version's item factors scaled to unit length (float32), built once per version and
    shared by every rule set and rules generation that uses MMR (a retired version drops it).
    Each row is the row divided by its norm, the same float32 division a request would do."""
    with _UNITS_LOCK:
        found = _UNITS.get(model)
    if found is not None:
        return found
    y = np.asarray(model.item_factors, dtype=np.float32)
    norms = np.maximum(np.sqrt(np.einsum("ij,ij->i", y, y)), np.float32(1e-12)).astype(np.float32)
    units = np.ascontiguousarray(y / norms[:, None])
    units.flags.writeable = False
    with _UNITS_LOCK:
        return _UNITS.setdefault(model, units)


class CompiledRules:
    """Per model version (weakly held: a retired version drops its entry), per rules generation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_model: weakref.WeakKeyDictionary[Model, tuple[int, ForModel]] = weakref.WeakKeyDictionary()

    def get(self, model: Model, rules: RulesFile, generation: int) -> ForModel:
        with self._lock:
            cached = self._by_model.get(model)
        if cached is not None and cached[0] == generation:
            return cached[1]
        hidden, _ = model.items.rows_of(list(rules.hide)) if rules.hide else (np.zeros(0, np.int64), None)
        sets: dict[tuple[str, str], Compiled | None] = {}
        for r in rules.rule_sets:
            if r.model == model.name:
                sets[(r.experiment, r.arm)] = compile_set(model, r) if r.reorders else None
        built = ForModel(np.asarray(hidden, dtype=np.int64), sets)
        with self._lock:
            self._by_model[model] = (generation, built)
        return built
