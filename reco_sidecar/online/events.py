"""A feedback event, and its validation against the types the serving version was trained with.

An event's value is its type's weight times its own weight (1 when it gives none): the value
training gave the same interaction (training/weights.py), so a click sent online counts as a
click in the next version. A negative type (skip, hide) gives a negative value; see
engine/objective.py for how the solve reads it and engine/eventtypes.py for which types put
the item in the user's seen set (`hide` does, `skip` does not).

Every refusal names the field by its place in the batch (`events[3].type`), so a client can
fix the one event; a batch is refused whole (nothing of it is applied).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reco_sidecar.common.errors import FailedPrecondition, InvalidArgument
from reco_sidecar.common.ids import id_problem
from reco_sidecar.engine.eventtypes import EventType

# An event's own weight multiplies its type's; bounded so that a value stays a sane confidence.
MAX_EVENT_WEIGHT = 1e6
# Unix seconds; about the year 5138. Beyond it a time is a unit mistake (milliseconds).
MAX_TIME = 1e11


@dataclass(frozen=True)
class Event:
    event_id: str
    user_id: str
    item_id: str
    type: str
    # None: the type's weight alone.
    weight: float | None
    # Unix seconds when it happened (not when it arrived): compared with a version's as_of.
    time: float


@dataclass(frozen=True)
class Valued:
    """An accepted event with what it means to the model that accepted it."""

    event: Event
    value: float
    excludes: bool
    # Of a "shown" type (weight 0): an impression, counted for the impressions rule and never
    # part of a solve (engine/eventtypes.py).
    shown: bool = False


def value_of(event: Event, types: Mapping[str, EventType]) -> Valued:
    """The event's value; the type must be one of `types` (validate first)."""
    kind = types[event.type]
    weight = 1.0 if event.weight is None else event.weight
    return Valued(event, kind.weight * weight, kind.excludes, kind.weight == 0)


def problem(event: Event, types: Mapping[str, EventType]) -> tuple[str, str] | None:
    """(field, message) of the first thing wrong with one event, or None."""
    for name in ("event_id", "user_id", "item_id"):
        value = getattr(event, name)
        if not isinstance(value, str):
            return name, "must be a string"
        wrong = id_problem(value)
        if wrong is not None:
            return name, wrong
    if event.type not in types:
        known = ", ".join(sorted(types))
        # the message repeats only a short type name: a huge one is not echoed back
        shown = repr(event.type) if len(event.type) <= 64 else "this type"
        return "type", f"{shown} is not one of the model's event types ({known})"
    if event.weight is not None and not (math.isfinite(event.weight) and 0 < event.weight <= MAX_EVENT_WEIGHT):
        return "weight", f"must be a finite number above 0 and at most {MAX_EVENT_WEIGHT:g}"
    if not (math.isfinite(event.time) and 0 <= event.time <= MAX_TIME):
        return "time", f"must be finite Unix seconds between 0 and {MAX_TIME:g}"
    return None


def validate(events: Sequence[Event], types: Mapping[str, EventType], *, field: str = "events") -> list[Valued]:
    """Every event valued, or InvalidArgument naming the first bad field (`events[3].weight`).

    A version that records no event types (written before they were recorded) accepts no
    events: FailedPrecondition, since only retraining fixes it.
    """
    if not types:
        raise FailedPrecondition("the serving version records no event types (it was trained before they "
                                 "were recorded): retrain it to accept feedback", field=field)
    out: list[Valued] = []
    for i, event in enumerate(events):
        wrong = problem(event, types)
        if wrong is not None:
            raise InvalidArgument(wrong[1], field=f"{field}[{i}].{wrong[0]}")
        out.append(value_of(event, types))
    return out
