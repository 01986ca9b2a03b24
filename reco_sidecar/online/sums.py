"""Exact sums of event values: the same total whatever order the values arrive in.

Floating-point addition is not associative: 0.1 + 0.2 + 0.7 is 1.0 in that order and
0.9999999999999999 in the reverse one. Replicas and workers receive a user's events in
different orders, and a learner restarted from its journal replays them in yet another, so
a running float total would leave each process with a slightly different value, and a
slightly different vector. Instead a total is kept as Shewchuk's non-overlapping partials
(the algorithm behind math.fsum): their exact sum is the exact sum of every value added,
and `total` rounds it once, correctly. Usually one or two floats per item.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

Partials = tuple[float, ...]
ZERO: Partials = ()


def add(partials: Partials, x: float) -> Partials:
    """`partials` with the finite value `x` added, exactly."""
    out: list[float] = []
    for y in partials:
        if abs(x) < abs(y):
            x, y = y, x
        high = x + y
        low = y - (high - x)
        if low:
            out.append(low)
        x = high
    out.append(x)
    return tuple(out)


def total(partials: Partials) -> float:
    """The exact sum, rounded once to the nearest float."""
    return math.fsum(partials)


def exact(values: Iterable[float]) -> float:
    """The exact sum of `values`, rounded once: `total` of all of them added in any order."""
    return math.fsum(values)
