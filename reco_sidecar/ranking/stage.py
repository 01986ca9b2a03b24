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
from collections.abc import Callable, Generator
from dataclasses import dataclass

import numpy as np

from reco_sidecar.engine.model import Model
from reco_sidecar.engine.query import Ranked, RecQuery, Restriction
from reco_sidecar.ranking import mmr
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


def next_depth(c: Compiled, asked: int) -> int:
    """The next retrieval's depth when `asked` was not enough for an exact list."""
    return min(c.rules.max_candidates, asked * 2)


def retrieval_query(query: RecQuery, k: int) -> RecQuery:
    return dataclasses.replace(query, offset=0, n=k)


def deeper(model: Model, query: RecQuery) -> Callable[[int], Ranked]:
    """A deeper retrieval for the same query, scored directly (rare: caps or boosts past the first)."""
    def retrieve(k: int) -> Ranked:
        return model.recommend([retrieval_query(query, k)])[0]
    return retrieve


def explicit(model: Model, c: Compiled, query: RecQuery) -> Ranked | None:
    """Pins and boosted items this user may be shown, with their scores."""
    if not len(c.explicit):
        return None
    r = query.restriction
    rows = c.explicit if r.candidate_rows is None else np.intersect1d(c.explicit, r.candidate_rows)
    q = dataclasses.replace(query, offset=0, n=len(rows), restriction=Restriction(r.exclude_rows, rows, r.allow_mask))
    return model.recommend([q])[0]


def adjust(raw: np.ndarray, factor: np.ndarray) -> np.ndarray:
    # A factor scales a positive score up and a negative one towards zero alike: order-preserving.
    return np.asarray(np.where(raw >= 0, raw * factor, raw / factor), dtype=np.float64)


def steps(model: Model, c: Compiled, query: RecQuery, now: float) -> Generator[int, Ranked, Page]:
    """The stage as an exchange with retrieval, whoever runs it: yields how many items it needs
    (depth(c, query) first, then deeper while the list is not exact), is sent the retrieval's
    top that many, and returns the page. Recommend sends each retrieval through the batcher,
    so a deeper one shares a batch's product instead of being scored alone."""
    asked = depth(c, query)
    known = explicit(model, c, query)
    while True:
        retrieved = yield asked
        page = attempt(c, query, retrieved, asked, known, now)
        if page is not None:
            return page
        asked = next_depth(c, asked)


def rerank(model: Model, c: Compiled, query: RecQuery, retrieved: Ranked,
           retrieve: Callable[[int], Ranked], now: float) -> Page:
    """The page from `retrieved` (depth(c, query) items), going deeper through `retrieve` as
    long as the list is not exact yet."""
    exchange = steps(model, c, query, now)
    next(exchange)  # depth(c, query): what `retrieved` holds
    try:
        while True:
            retrieved = retrieve(exchange.send(retrieved))
    except StopIteration as done:
        page: Page = done.value
        return page


def attempt(c: Compiled, query: RecQuery, retrieved: Ranked, asked: int, known: Ranked | None,
            now: float) -> Page | None:
    """The page re-ranked from the top `asked` items `retrieved`, or None when the list needs
    a deeper retrieval to be exact (never at max_candidates: past it the list is exact over
    those only). `known` is explicit(...) for the same query."""
    rows, raw, chosen_pinned, exact = _choose(c, query, retrieved, asked, known, now)
    if not exact and asked < c.rules.max_candidates:
        return None
    page = slice(query.offset, query.k)
    out_rows = rows[page]
    # Scores are the model's; a pinned or boosted item's as scored directly.
    scores = raw[page].astype(np.float32)
    if known is not None and len(known.rows) and len(out_rows):
        direct = dict(zip(known.rows.tolist(), known.scores.tolist(), strict=True))
        scores = np.asarray([direct.get(r, s) for r, s in zip(out_rows.tolist(), scores.tolist(), strict=True)],
                            dtype=np.float32)
    return Page(out_rows, scores, chosen_pinned[page], Ranked(out_rows, scores, retrieved.source))


def _choose(c: Compiled, query: RecQuery, retrieved: Ranked, asked: int, explicit: Ranked | None,
            now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """The list's rows (int64), their model scores (float64), pin marks, and whether it is exact."""
    rules = c.rules
    exhausted = len(retrieved.rows) < asked
    if exhausted or not len(retrieved.rows):
        bound = -math.inf
    else:
        last, most = float(retrieved.scores[-1]), c.outside_factor
        bound = last * most if last >= 0 else last / most
    pool_rows = np.asarray(retrieved.rows, dtype=np.int64)  # read only here: no copy needed
    pool_raw = retrieved.scores.astype(np.float64)
    pins: dict[int, int] = {}
    pin_raw: dict[int, float] = {}
    if explicit is not None and len(explicit.rows):
        allowed = dict(zip(explicit.rows.tolist(), explicit.scores.tolist(), strict=True))
        pins = {pos: row for pos, row in c.pins.items() if row in allowed}
        pin_raw = {row: allowed[row] for row in pins.values()}
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
        adjusted = adjust(pool_raw, factor)
        order = np.lexsort((pool_rows, -adjusted))  # best first, ties to the lower row
        pool_rows, adjusted, pool_raw = pool_rows[order], adjusted[order], pool_raw[order]
    else:
        adjusted = pool_raw  # retrieval's own order: score descending, ties to the lower row
    codes = c.cap_codes[pool_rows] if c.cap_codes is not None else None
    d = rules.diversity
    if d.mmr_lambda > 0:
        out, pinned, exact = mmr.pick(c, query.k, pool_rows, adjusted, codes, pins, bound, exhausted)
    else:
        out, pinned, exact = _greedy(c, query.k, pool_rows, adjusted, codes, pins, bound, exhausted)
    # `out` holds a pin's row, or an organic item's place in the pool: its row and raw score.
    marks = np.asarray(pinned, dtype=bool)
    if not pins:  # the usual case: one gather each
        places = np.asarray(out, dtype=np.int64)
        return pool_rows[places], pool_raw[places], marks, exact
    rows = np.asarray([x if p else int(pool_rows[x]) for x, p in zip(out, pinned, strict=True)], dtype=np.int64)
    raw = np.asarray([pin_raw[x] if p else float(pool_raw[x]) for x, p in zip(out, pinned, strict=True)],
                     dtype=np.float64)
    return rows, raw, marks, exact


def _sunk(c: Compiled, query: RecQuery) -> np.ndarray:
    """Rows the impressions rule sinks for this user. A factor below 1 only lowers an item,
    so the exactness bound holds."""
    return sunk_rows(c, query.shown)


def sunk_rows(c: Compiled | None, shown: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """Rows shown `max_shown` times or more since their last engagement, under `c`'s
    impressions rule (none without the rule or the counts)."""
    rule = None if c is None else c.rules.impressions
    if rule is None or shown is None:
        return np.zeros(0, np.int64)
    rows, counts = shown
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
    adj_list = adjusted.tolist()
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
        for i in range(first_free, len(rows)):
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
        out.append(pick)
        pinned.append(False)
        placed.append(code_list[pick] if code_list is not None else -1)
    return out, pinned, exact or exhausted
