"""Maximal marginal relevance over one candidate pool: the stage's choice at each position
with mmr_lambda > 0 (ranking/stage.py, docs/ranking.md).

At each position MMR picks among the `candidates` best remaining items the cap allows there:
a pool that slides down the list, so the list never depends on the page asked for. The pick
is the pool's highest (1 - lambda) * adjusted + (-lambda) * (largest cosine to the last
`window` placed items), ties to the first (the better by adjusted score). A cosine is the
float64 sum of the float64 products of two float32 unit vectors (the version's, compiled
once): every product is exact, so the two forms below differ at most in the order of a
cosine's additions, which decides a pick only between items within about 1e-15.

Two forms of the same loop:
- compiled (`_mmr.c`, built at install when a C compiler is there): a position costs the
  cosines of the pool's items to the item placed last, a few microseconds for ten positions;
- numpy (`numpy_pick`): whole-array steps, a microsecond or two each whatever the array's
  size, so about 0.1 ms for ten positions. It is the fallback, and the reference the
  compiled form is tested against (tests/test_ranking_mmr.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

from reco_sidecar.common import native
from reco_sidecar.ranking.compiled import Compiled

Picked = tuple[list[int], list[bool], bool]
Kernel = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray, int, float, int,
                   int, int, int, float, bool], Picked]


# None when the install had no C compiler: the numpy form serves.
KERNEL: Kernel | None = native.kernel("reco_sidecar.ranking._mmr", "pick")


def pick(c: Compiled, want: int, rows: np.ndarray, adjusted: np.ndarray, codes: np.ndarray | None,
         pins: dict[int, int], bound: float, exhausted: bool) -> Picked:
    """The list's first `want` positions: per position a pin's item row or an organic item's
    place in `rows` (sorted best adjusted score first), whether it is a pin, and whether the
    list is exact (False with fewer positions: the pool reached past what was retrieved and
    retrieval must go deeper). `codes` are the cap field's codes of `rows`."""
    if KERNEL is not None:
        return compiled_pick(KERNEL, c, want, rows, adjusted, codes, pins, bound, exhausted)
    return numpy_pick(c, want, rows, adjusted, codes, pins, bound, exhausted)


def compiled_pick(kernel: Kernel, c: Compiled, want: int, rows: np.ndarray, adjusted: np.ndarray,
                  codes: np.ndarray | None, pins: dict[int, int], bound: float, exhausted: bool) -> Picked:
    d = c.rules.diversity
    assert c.units is not None  # compiled with MMR
    pin_rows = np.full(want, -1, dtype=np.int64)
    pin_codes = np.full(want, -1, dtype=np.int32)
    for position, row in pins.items():
        if position <= want:
            pin_rows[position - 1] = row
            if c.cap_codes is not None:
                pin_codes[position - 1] = c.cap_codes[row]
    return kernel(c.units, np.ascontiguousarray(rows, dtype=np.int64),
                  np.ascontiguousarray(adjusted, dtype=np.float64),
                  None if codes is None else np.ascontiguousarray(codes, dtype=np.int32), pin_rows, pin_codes,
                  c.cap_values, d.mmr_lambda, c.rules.candidates, want, d.window, d.cap, bound, exhausted)


def numpy_pick(c: Compiled, want: int, rows: np.ndarray, adjusted: np.ndarray, codes: np.ndarray | None,
               pins: dict[int, int], bound: float, exhausted: bool) -> Picked:
    """The same as the compiled form, in whole-array steps. Every candidate's MMR value is
    kept up to date as items are placed (one product with the placed item's unit vector);
    the cap's window is counted as items enter and leave it, and the eligible mask is rebuilt
    only when a value becomes capped or free."""
    d = c.rules.diversity
    lam = d.mmr_lambda
    pool_size = c.rules.candidates
    units = c.units
    assert units is not None  # compiled with MMR
    # float64 copies of the float32 unit vectors: every product of two is exact
    unit = units.take(rows, axis=0).astype(np.float64)
    relevance = (1.0 - lam) * adjusted
    value = relevance.copy()  # (1 - lambda) * adjusted - lambda * (largest cosine to the window)
    placed_sims: list[np.ndarray] = []  # each placed item's cosine to every candidate, in order
    maxsim = np.full(len(rows), -np.inf)
    out: list[int] = []
    pinned: list[bool] = []
    all_codes = c.cap_codes
    capping = codes is not None and all_codes is not None and d.cap > 0 and d.window > 1
    available = np.ones(len(rows), dtype=bool)
    # Without a cap every available item is eligible: one mask serves both.
    eligible = available.copy() if capping else available
    # The cap's window: the codes of the last window - 1 placed items, and their counts.
    window: deque[int] = deque(maxlen=max(d.window - 1, 0))
    counts: dict[int, int] = {}
    is_blocked = np.zeros(c.cap_values if capping else 1, dtype=bool)
    exact = True
    for position in range(1, want + 1):
        pin = pins.get(position)
        if pin is not None:
            sims = unit.dot(units[pin].astype(np.float64))
            out.append(pin)
            pinned.append(True)
            placed = int(all_codes[pin]) if capping and all_codes is not None else -1
        else:
            pool = eligible.nonzero()[0][:pool_size]
            if len(pool) < pool_size or adjusted[pool[-1]] <= bound:
                if not exhausted:
                    return out, pinned, False  # the pool reaches past what was retrieved
                if not len(pool):  # the whole catalogue is capped out: the cap gives way
                    exact = False
                    pool = available.nonzero()[0][:pool_size]
                    if not len(pool):
                        break
            pick = int(pool[value[pool].argmax()])  # ties to the first, the better by adjusted score
            available[pick] = False
            eligible[pick] = False
            sims = unit.dot(unit[pick])
            out.append(pick)
            pinned.append(False)
            placed = int(codes[pick]) if capping and codes is not None else -1
        if position == want:
            break  # nothing left to choose: the values and the window are not needed again
        placed_sims.append(sims)
        if len(placed_sims) > d.window:  # the oldest leaves the window: recompute from the rest
            placed_sims.pop(0)
            maxsim = np.max(placed_sims, axis=0)
        else:
            np.maximum(maxsim, sims, out=maxsim)
        np.multiply(maxsim, -lam, out=value)
        value += relevance
        if capping and codes is not None:
            changed = False
            if len(window) == window.maxlen:
                left = window[0]
                if left >= 0:
                    counts[left] -= 1
                    if counts[left] == d.cap - 1:
                        is_blocked[left] = False
                        changed = True
            window.append(placed)
            if placed >= 0:
                counts[placed] = counts.get(placed, 0) + 1
                if counts[placed] == d.cap:
                    is_blocked[placed] = True
                    changed = True
            if changed:
                eligible = available & ~is_blocked[codes]
    return out, pinned, exact
