"""What serving needs from online learning (docs/online.md), as a Protocol the worker
fills in: look a user's online vector up, and hand accepted events to the one learner.

Feedback's proto events become `online.events.Event`s here, checked against the serving
version's event types (online/events.py) so a refusal names `events[i].<field>`; nothing
refused ever reaches the learner.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from reco_sidecar.common.errors import InvalidArgument, ResourceExhausted
from reco_sidecar.engine.eventtypes import EventType
from reco_sidecar.engine.model import Model
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.online.events import Event, validate

__all__ = ["Accepted", "Event", "Online", "OnlineUser", "events_of"]

MAX_EVENTS_PER_MESSAGE = 1000


@dataclass(frozen=True)
class OnlineUser:
    """A user's vector as the learner last solved it against the version being served."""

    # None: the user has impressions but nothing to solve; the trained vector stands.
    vector: np.ndarray | None
    # Item rows of that version the user's events put in their seen set.
    seen_rows: np.ndarray
    # False: a user unknown at training, answered from their events alone.
    known: bool
    # The events' part of the history the vector was solved from: item rows (ascending) and
    # the online values summed per item; the trained values come on top (online/solve.py).
    sum_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sum_values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # Item rows shown to the user and how often since their last engagement with each.
    shown_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    shown_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


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


def events_of(request: reco_pb2.FeedbackRequest, types: Mapping[str, EventType], now: float | None = None
              ) -> list[Event]:
    """The request's events, checked against the serving version's types, or
    InvalidArgument / ResourceExhausted / FailedPrecondition naming the field. A weight of 0
    (unset) is the type's weight alone; a time of 0 is when the sidecar received it."""
    count = len(request.events)
    if not count:
        raise InvalidArgument("must not be empty", field="events")
    if count > MAX_EVENTS_PER_MESSAGE:
        raise ResourceExhausted(f"{count} events, at most {MAX_EVENTS_PER_MESSAGE} per message", field="events")
    received = time.time() if now is None else now
    events = [Event(e.event_id, e.user_id, e.item_id, e.type, e.weight if e.weight != 0.0 else None,
                    e.time if e.time != 0.0 else received) for e in request.events]
    validate(events, types)
    return events
