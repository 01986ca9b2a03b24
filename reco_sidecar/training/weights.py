"""How much each kind of interaction counts, and how fast old interactions fade.

A negative weight makes a negative type (skip, hide): its interactions lower the pair's
value, and a pair whose value ends below zero is read by ALS as "not liked, with confidence
alpha x |value|" (engine/objective.py). The weights are recorded in the version's manifest
as the event types the sidecar accepts online (engine/eventtypes.py).

A weight of 0 makes a shown type (impressions): recorded in the manifest so that the sidecar
accepts it online for the impressions rule (docs/ranking.md), and never read for training.
"""

from __future__ import annotations

import math

from reco_sidecar.common.errors import InvalidArgument
from reco_sidecar.engine.eventtypes import MAX_NAME_BYTES

# The manifest's bound on a type's weight (artifact/manifest.py MAX_TYPE_WEIGHT).
MAX_WEIGHT = 1e6

# A share says far more about taste than a view that may have been a scroll-past.
DEFAULT_TYPE_WEIGHTS: dict[str, float] = {"view": 0.1, "click": 0.3, "like": 0.7, "share": 1.0}


def parse(text: str) -> dict[str, float]:
    """'view=0.1,click=0.3' -> {'view': 0.1, 'click': 0.3}; only the types named are read."""
    out: dict[str, float] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InvalidArgument(f"{part!r} is not type=weight", field="weights")
        try:
            weight = float(value)
        except ValueError:
            raise InvalidArgument(f"weight of {name!r} is not a number: {value!r}", field="weights") from None
        if not math.isfinite(weight) or abs(weight) > MAX_WEIGHT:
            raise InvalidArgument(f"weight of {name!r} must be a finite number between {-MAX_WEIGHT:g} "
                                  f"and {MAX_WEIGHT:g} (0: a shown type), got {value!r}", field="weights")
        if not name.isprintable() or len(name.encode("utf-8")) > MAX_NAME_BYTES:
            raise InvalidArgument(f"type {name!r} must be printable and at most {MAX_NAME_BYTES} bytes",
                                  field="weights")
        if name in out:
            raise InvalidArgument(f"type {name!r} is given twice", field="weights")
        out[name] = weight
    if not out:
        raise InvalidArgument("no type=weight pairs given", field="weights")
    if not any(out.values()):
        raise InvalidArgument("every type has weight 0: at least one must be an interaction to train on",
                              field="weights")
    return out


def trained(type_weights: dict[str, float]) -> dict[str, float]:
    """The types training reads: shown types (weight 0) are impressions, not interactions."""
    return {name: w for name, w in type_weights.items() if w != 0}


def check_half_life(days: float | None) -> float | None:
    if days is not None and (not math.isfinite(days) or days <= 0):
        raise InvalidArgument(f"half-life must be a positive number of days, got {days}",
                              field="half_life_days")
    return days
