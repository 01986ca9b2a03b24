"""The ranking stage: re-ranks an exact candidate set from retrieval into the served list.

Positions 1..offset+n are filled one at a time (the page is the tail of that list, so pages of
one list never overlap and do not depend on the page size):
- a pinned item takes its position, if this user may be shown it;
- otherwise the best remaining candidate by adjusted score (the model's score times its boost or
  bury factor and its freshness boost), skipping items whose cap-field value already fills
  `cap` of the last `window` positions; with mmr_lambda > 0 "best" is maximal marginal
  relevance, (1 - lambda) * adjusted - lambda * the largest cosine to the last `window` items,
  among the `candidates` best remaining items.

Exactness: retrieval returns the top C by the model's score, pins and boosted items are scored
whatever their rank, and no other item can be adjusted above `bound` = the C-th score times the
freshness boost. With lambda = 0, a list whose every chosen item beats `bound` is the list the
whole catalogue would give; otherwise C doubles (up to max_candidates) and the list is rebuilt.
With lambda > 0 each position is chosen from a pool of the `candidates` best remaining items
the cap allows, and the same test (every pool's last item beats `bound`) makes it exact.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from reco_sidecar.engine.model import Model
from reco_sidecar.engine.query import Ranked, RecQuery, Restriction
from reco_sidecar.ranking.compiled import Compiled


@dataclass(frozen=True)
class Page:
    rows: np.ndarray
    scores: np.ndarray  # the model's own scores; the order is the stage's
    pinned: np.ndarray  # bool per row
    ranked: Ranked  # rows and scores as a Ranked, with the retrieval's source


def depth(c: Compiled, query: RecQuery) -> int:
    """How many items the first retrieval asks for: enough, usually, for the list to be exact
    at once (MMR's sliding pool reaches `candidates` past the last position)."""
    if c.rules.diversity.mmr_lambda > 0:
        return 2 * query.k + 3 * c.rules.candidates
    return max(4 * query.k, query.k + len(c.pins), 20)


def retrieval_query(query: RecQuery, k: int) -> RecQuery:
    return dataclasses.replace(query, offset=0, n=k)


def deeper(model: Model, query: RecQuery) -> Callable[[int], Ranked]:
    """A deeper retrieval for the same query, scored directly (rare: caps or boosts past the first)."""
    def retrieve(k: int) -> Ranked:
        return model.recommend([retrieval_query(query, k)])[0]
    return retrieve


def _explicit(model: Model, c: Compiled, query: RecQuery) -> Ranked | None:
    """Pins and boosted items this user may be shown, with their scores."""
    if not len(c.explicit):
        return None
    r = query.restriction
    rows = c.explicit if r.candidate_rows is None else np.intersect1d(c.explicit, r.candidate_rows)
    q = dataclasses.replace(query, offset=0, n=len(rows), restriction=Restriction(r.exclude_rows, rows, r.allow_mask))
    return model.recommend([q])[0]


def _adjust(raw: np.ndarray, factor: np.ndarray) -> np.ndarray:
    # A factor scales a positive score up and a negative one towards zero alike: order-preserving.
    return np.asarray(np.where(raw >= 0, raw * factor, raw / factor), dtype=np.float64)


def rerank(model: Model, c: Compiled, query: RecQuery, retrieved: Ranked,
           retrieve: Callable[[int], Ranked], now: float) -> Page:
    asked = depth(c, query)
    explicit = _explicit(model, c, query)
    while True:
        rows, chosen_pinned, exact = _choose(model, c, query, retrieved, asked, explicit, now)
        if exact or asked >= c.rules.max_candidates:
            break
        asked = min(c.rules.max_candidates, asked * 2)
        retrieved = retrieve(asked)
    # Scores are the model's: look them up among what was scored.
    known = dict(zip(retrieved.rows.tolist(), retrieved.scores.tolist(), strict=True))
    if explicit is not None:
        known.update(zip(explicit.rows.tolist(), explicit.scores.tolist(), strict=True))
    page = slice(query.offset, query.k)
    out_rows = np.asarray(rows[page], dtype=np.int64)
    scores = np.asarray([known[r] for r in rows[page]], dtype=np.float32)
    return Page(out_rows, scores, np.asarray(chosen_pinned[page], dtype=bool),
                Ranked(out_rows, scores, retrieved.source))


def _choose(model: Model, c: Compiled, query: RecQuery, retrieved: Ranked, asked: int, explicit: Ranked | None,
            now: float) -> tuple[list[int], list[bool], bool]:
    rules = c.rules
    exhausted = len(retrieved.rows) < asked
    if exhausted or not len(retrieved.rows):
        bound = -math.inf
    else:
        last, most = float(retrieved.scores[-1]), c.outside_factor
        bound = last * most if last >= 0 else last / most
    pool_rows = retrieved.rows.astype(np.int64)
    pool_raw = retrieved.scores.astype(np.float64)
    pins: dict[int, int] = {}
    if explicit is not None and len(explicit.rows):
        allowed = set(explicit.rows.tolist())
        pins = {pos: row for pos, row in c.pins.items() if row in allowed}
        extra = ~np.isin(explicit.rows, pool_rows)
        pool_rows = np.concatenate([pool_rows, explicit.rows[extra].astype(np.int64)])
        pool_raw = np.concatenate([pool_raw, explicit.scores[extra].astype(np.float64)])
    if pins:
        keep = ~np.isin(pool_rows, np.fromiter(pins.values(), dtype=np.int64))
        pool_rows, pool_raw = pool_rows[keep], pool_raw[keep]
    f = rules.freshness
    sunk = _sunk(c, query)
    if (c.factors or (f is not None and c.created_at is not None) or len(pool_rows) > len(retrieved.rows) or pins
            or len(sunk)):
        factor = np.ones(len(pool_rows))
        if c.factors:
            factor *= np.fromiter((c.factors.get(r, 1.0) for r in pool_rows.tolist()), dtype=np.float64,
                                  count=len(pool_rows))
        if f is not None and c.created_at is not None:
            factor[c.created_at[pool_rows] > now - f.max_age_seconds] *= f.boost
        if len(sunk):
            assert rules.impressions is not None
            factor[np.isin(pool_rows, sunk)] *= rules.impressions.factor
        adjusted = _adjust(pool_raw, factor)
        order = np.lexsort((pool_rows, -adjusted))  # best first, ties to the lower row
        pool_rows, adjusted = pool_rows[order], adjusted[order]
    else:
        adjusted = pool_raw  # retrieval's own order: score descending, ties to the lower row
    codes = c.cap_codes[pool_rows] if c.cap_codes is not None else None
    d = rules.diversity
    if d.mmr_lambda > 0:
        return _mmr(model, c, query.k, pool_rows, adjusted, codes, pins, bound, exhausted)
    return _greedy(c, query.k, pool_rows, adjusted, codes, pins, bound, exhausted)


def _sunk(c: Compiled, query: RecQuery) -> np.ndarray:
    """Rows the impressions rule sinks for this user: shown `max_shown` times or more since
    their last engagement. A factor below 1 only lowers an item, so the exactness bound holds."""
    rule = c.rules.impressions
    if rule is None or query.shown is None:
        return np.zeros(0, np.int64)
    rows, counts = query.shown
    return np.asarray(rows[counts >= rule.max_shown], dtype=np.int64)


def _capped(c: Compiled, placed_codes: list[int], code: int) -> bool:
    d = c.rules.diversity
    return d.cap > 0 and placed_codes[-(d.window - 1):].count(code) >= d.cap if d.window > 1 else d.cap < 1


def _greedy(c: Compiled, want: int, rows: np.ndarray, adjusted: np.ndarray, codes: np.ndarray | None,
            pins: dict[int, int], bound: float, exhausted: bool) -> tuple[list[int], list[bool], bool]:
    out: list[int] = []
    pinned: list[bool] = []
    placed: list[int] = []  # cap codes of the list so far (-1: none)
    used = np.zeros(len(rows), dtype=bool)
    row_list, adj_list = rows.tolist(), adjusted.tolist()
    code_list = codes.tolist() if codes is not None else None
    all_codes = c.cap_codes
    exact = True
    first_free = 0
    for position in range(1, want + 1):
        pin = pins.get(position)
        if pin is not None:
            out.append(pin)
            pinned.append(True)
            placed.append(int(all_codes[pin]) if all_codes is not None else -1)
            continue
        pick = -1
        for i in range(first_free, len(row_list)):
            if used[i]:
                continue
            if code_list is not None and _capped(c, placed, code_list[i]):
                continue
            pick = i
            break
        if pick < 0:
            if not exhausted:
                return out, pinned, False  # retrieval must go deeper
            # The whole catalogue is capped out: the best remaining item, cap or not.
            free = np.flatnonzero(~used)
            if not len(free):
                break
            pick = int(free[0])
        if adj_list[pick] <= bound:
            exact = False
        used[pick] = True
        while first_free < len(used) and used[first_free]:
            first_free += 1
        out.append(row_list[pick])
        pinned.append(False)
        placed.append(code_list[pick] if code_list is not None else -1)
    return out, pinned, exact or exhausted


def _mmr(model: Model, c: Compiled, want: int, rows: np.ndarray, adjusted: np.ndarray, codes: np.ndarray | None,
         pins: dict[int, int], bound: float, exhausted: bool) -> tuple[list[int], list[bool], bool]:
    """At each position MMR picks among the `candidates` best remaining items the cap allows
    there: a pool that slides down the list, so the list never depends on the page asked for.

    Every candidate's MMR value is kept up to date as items are placed (one product with the
    placed item's unit vector), so a pick costs a handful of whole-array steps; item norms are
    computed once per model version."""
    d = c.rules.diversity
    lam = d.mmr_lambda
    pool_size = c.rules.candidates
    norms = c.norms
    assert norms is not None  # compiled with MMR
    unit = model.item_factors[rows] / norms[rows][:, None]  # float32: the cosines only order candidates
    relevance = (1.0 - lam) * adjusted
    value = relevance.copy()  # (1 - lambda) * adjusted - lambda * (largest cosine to the window)
    placed_sims: list[np.ndarray] = []  # each placed item's cosine to every candidate, in order
    maxsim = np.full(len(rows), -np.inf)
    out: list[int] = []
    pinned: list[bool] = []
    placed: list[int] = []  # cap codes of the list so far (-1: none)
    available = np.ones(len(rows), dtype=bool)
    eligible = available.copy()
    all_codes = c.cap_codes
    capping = codes is not None and d.cap > 0
    blocked: set[int] = set()
    is_blocked = np.zeros(int(all_codes.max()) + 1 if capping and all_codes is not None else 1, dtype=bool)
    exact = True
    for position in range(1, want + 1):
        pin = pins.get(position)
        if pin is not None:
            sims = unit @ (model.item_factors[pin] / norms[pin])
            out.append(pin)
            pinned.append(True)
            placed.append(int(all_codes[pin]) if all_codes is not None else -1)
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
            pick = int(pool[int(np.argmax(value[pool]))])  # ties to the first, the better by adjusted score
            available[pick] = eligible[pick] = False
            sims = unit @ unit[pick]
            out.append(int(rows[pick]))
            pinned.append(False)
            placed.append(int(codes[pick]) if codes is not None else -1)
        placed_sims.append(sims)
        if len(placed_sims) > d.window:  # the oldest leaves the window: recompute from the rest
            placed_sims.pop(0)
            maxsim = np.max(placed_sims, axis=0)
        else:
            np.maximum(maxsim, sims, out=maxsim)
        np.multiply(maxsim, -lam, out=value)
        value += relevance
        if capping and codes is not None:
            window = placed[-(d.window - 1):] if d.window > 1 else []
            now_blocked = {code for code in set(window) if code >= 0 and window.count(code) >= d.cap}
            if now_blocked != blocked:
                for code in blocked - now_blocked:
                    is_blocked[code] = False
                for code in now_blocked - blocked:
                    is_blocked[code] = True
                blocked = now_blocked
                eligible = available & ~is_blocked[codes] if blocked else available.copy()
    return out, pinned, exact
