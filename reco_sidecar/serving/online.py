"""What serving needs from online learning (docs/online.md), as a Protocol the worker
fills in: look a user's online vector up, and hand accepted events to the one learner.

Feedback's proto events become `Event`s here, checked field by field so a refusal names
`events[i].<field>`; nothing refused ever reaches the learner.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from reco_sidecar.common.errors import InvalidArgument, ResourceExhausted
from reco_sidecar.engine.model import Model
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.serving.request_checks import id_problem

MAX_EVENTS_PER_MESSAGE = 1000
MAX_EVENT_ID_BYTES = 128
MAX_ABS_WEIGHT = 1000.0
# An event time further ahead than this is refused: a clock that far off would keep the
# event past every retrain (it is newer than any version's as_of).
MAX_FUTURE_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class Event:
    """One accepted interaction. `weight` None: the type's trained weight."""

    event_id: str
    user_id: str
    item_id: str
    type: str
    weight: float | None
    time: float


@dataclass(frozen=True)
class OnlineUser:
    """A user's vector as the learner last solved it against the version being served."""

    vector: np.ndarray
    # Item rows of that version the user interacted with online: left out like trained seen items.
    seen_rows: np.ndarray
    # False: a user unknown at training, answered from their events alone.
    known: bool


@dataclass(frozen=True)
class Accepted:
    accepted: int
    duplicates: int


class Online(Protocol):
    def lookup(self, model: Model, user_id: str) -> OnlineUser | None:
        """The user's online vector for `model` (its exact version), or None."""
        ...

    async def submit(self, events: Sequence[Event]) -> Accepted:
        """Returns once every event is in the journal and in the shared table; raises
        Unavailable when the learner cannot be reached."""
        ...


def event_types(model: Model) -> dict[str, float]:
    """The event types `model` was trained with and their weights."""
    return model.info.event_types


def events_of(request: reco_pb2.FeedbackRequest, types: dict[str, float], now: float | None = None) -> list[Event]:
    """The request's events, or InvalidArgument / ResourceExhausted naming the field."""
    count = len(request.events)
    if not count:
        raise InvalidArgument("must not be empty", field="events")
    if count > MAX_EVENTS_PER_MESSAGE:
        raise ResourceExhausted(f"{count} events, at most {MAX_EVENTS_PER_MESSAGE} per message", field="events")
    received = time.time() if now is None else now
    return [_event(e, f"events[{i}]", types, received) for i, e in enumerate(request.events)]


def _event(e: reco_pb2.FeedbackEvent, at: str, types: dict[str, float], received: float) -> Event:
    for name, value in (("user_id", e.user_id), ("item_id", e.item_id)):
        problem = id_problem(value)
        if problem is not None:
            raise InvalidArgument(problem, field=f"{at}.{name}")
    if not e.event_id:
        raise InvalidArgument("must not be empty", field=f"{at}.event_id")
    if len(e.event_id) * 4 > MAX_EVENT_ID_BYTES and len(e.event_id.encode("utf-8", "surrogatepass")) > \
            MAX_EVENT_ID_BYTES:
        raise InvalidArgument(f"longer than {MAX_EVENT_ID_BYTES} bytes", field=f"{at}.event_id")
    if e.type not in types:
        known = ", ".join(sorted(types))
        raise InvalidArgument(f"unknown event type (the model was trained with {known})", field=f"{at}.type")
    if not math.isfinite(e.weight) or abs(e.weight) > MAX_ABS_WEIGHT:
        raise InvalidArgument(f"must be finite and within +-{MAX_ABS_WEIGHT:g}", field=f"{at}.weight")
    if not math.isfinite(e.time) or e.time < 0 or e.time > received + MAX_FUTURE_SECONDS:
        raise InvalidArgument("must be unix seconds, not in the future, or 0 for now", field=f"{at}.time")
    return Event(e.event_id, e.user_id, e.item_id, e.type, e.weight if e.weight != 0.0 else None,
                 e.time if e.time > 0 else received)
