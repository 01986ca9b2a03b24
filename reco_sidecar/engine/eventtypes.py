"""The interaction types a model was trained with, as the sidecar accepts them online.

Training turns each interaction into a value r = type weight (x the event's own weight, x any
time decay) and sums a user's values per item; an online event enters the same sum the same
way, so the types and their weights are read from the version's manifest, never configured
twice. A negative weight (skip, hide) is a negative r: see engine/objective.py for how the
solve reads it.

A weight of 0 makes a "shown" type (an impression: the item was on a page the user saw):
it is no interaction, so training reads none of its rows and no solve sees it; online, its
events count how often an item was shown to a user without an engagement, for the ranking
stage's impressions rule (docs/ranking.md). It never excludes.

`excludes`: whether an event of the type puts the item in the user's seen set, so it is not
recommended to them again. Positive types do (the item was consumed). `hide` does too: the
user asked not to see it. Other negative types (`skip`) do not: a skipped item may come back
later, ranked lower by the negative value it now carries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

# The negative types that also exclude the item.
EXCLUDING_NEGATIVE = frozenset({"hide"})
# Longest type name a manifest or an event may carry.
MAX_NAME_BYTES = 64


@dataclass(frozen=True)
class EventType:
    weight: float
    excludes: bool

    @property
    def shown(self) -> bool:
        return self.weight == 0


def default_excludes(name: str, weight: float) -> bool:
    return weight > 0 or name in EXCLUDING_NEGATIVE


def from_weights(weights: Mapping[str, float]) -> dict[str, EventType]:
    """Types from training's `--weights`, with the default exclusion rule."""
    out: dict[str, EventType] = {}
    for name, w in weights.items():
        if not math.isfinite(w):
            raise ValueError(f"weight of {name!r} must be a finite number, got {w}")
        out[name] = EventType(float(w), default_excludes(name, float(w)))
    return out
