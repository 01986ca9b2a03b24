"""One user's online events, folded deterministically and idempotently.

A history is a value: adding events returns a new history. It keeps the events themselves,
not running sums, for three reasons:
- idempotence: an event id already present is ignored (a retry or a replayed journal entry
  counts once; the first arrival wins if a retry differs);
- determinism: the events are kept in (time, event_id) order, and every sum is taken in that
  order, so two processes that received the same events in different orders compute the
  same values bit for bit;
- reload: a new version values the events with its own types and drops those at or before
  its `as_of` (`after`), since it learned them already.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from reco_sidecar.online.events import Event


def _key(e: Event) -> tuple[float, str]:
    return (e.time, e.event_id)


@dataclass(frozen=True)
class UserHistory:
    user_id: str
    # Sorted by (time, event_id); event ids unique.
    events: tuple[Event, ...] = ()

    @property
    def event_ids(self) -> frozenset[str]:
        return frozenset(e.event_id for e in self.events)

    def add(self, new: Iterable[Event]) -> UserHistory:
        """This history with `new` folded in; events of other users are refused (ValueError),
        events whose id is already here are ignored."""
        have = self.event_ids
        fresh: dict[str, Event] = {}
        for e in new:
            if e.user_id != self.user_id:
                raise ValueError(f"an event of another user joined {self.user_id!r}'s history")
            if e.event_id not in have and e.event_id not in fresh:
                fresh[e.event_id] = e
        if not fresh:
            return self
        return UserHistory(self.user_id, tuple(sorted((*self.events, *fresh.values()), key=_key)))

    def after(self, as_of: float | None) -> UserHistory:
        """The events a version trained on data up to `as_of` has not learned (None: all)."""
        if as_of is None:
            return self
        kept = tuple(e for e in self.events if e.time > as_of)
        return self if len(kept) == len(self.events) else UserHistory(self.user_id, kept)


def by_user(events: Iterable[Event]) -> dict[str, list[Event]]:
    """Events grouped by user, each group in arrival order."""
    out: dict[str, list[Event]] = {}
    for e in events:
        out.setdefault(e.user_id, []).append(e)
    return out
