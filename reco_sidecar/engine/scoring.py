"""Exact top-k recommendation: candidates from a pruned float32 product, scores and order
from one fixed routine, so that neither depends on how queries were batched.

Candidates. Items are kept sorted by norm, largest first, and scored in float32 blocks. A
row's score for any item at or after position p is at most |u| * norm[p] (Cauchy–Schwarz),
so once that bound falls below the row's current k-th best score no later item can enter
its top k and the row stops. On ALS factors item norms are spread widely (popular items are
long), so most rows stop after the first few thousand items. Per row the best k so far are
kept as int64 keys that sort like (-score, item row).

Scores and order. A float32 BLAS product rounds a dot product differently by shape and
position (a few ulp of |u| * |v|), so the block scores depend on the batch. They only pick
candidates: a margin of extra candidates is taken, every candidate is scored again by
exactdot (a function of the two vectors alone), and the list is ordered by that score, ties
to the lower item row. The answer is exact for those scores when the k-th best of them
beats anything left out: an item outside the candidates scored at most the cut in float32,
so its real score is at most cut + error bound (float32 error of a d-term dot product,
d * 2**-24 * |u| * max|v|, doubled); rows where the margin was too thin are ranked again
with twice the candidates. The result is the first k of one total order over all items, so
it is the same alone, in any batch, at any offset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from reco_sidecar.engine import exactdot
from reco_sidecar.engine.topk import EMPTY, decode_keys, sort_keys

NEG_INF = np.float32(-np.inf)
# Below every finite float32, above -inf: "score >= FLOOR" means "not masked".
FLOOR = np.float32(-np.finfo(np.float32).max)
# A float32 dot product of d terms is within about d * 2**-24 * |u| * |v| of the real one
# (summation order is BLAS's business); the bound is widened well past that so rounding
# can never make a skipped item beat the threshold.
SLACK = 1e-4
# Scores per group whose maxima bound a block's k-th best from below.
GROUP = 8


@dataclass(frozen=True, eq=False)
class NormOrder:
    """Item factors in descending-norm order, and the maps between order and item row.

    items is contiguous in norm order: gathering rows of item_factors block by block
    instead measured up to 2.5x slower for small batches and about 1.3x for B=512. The
    loader maps it from the artifact when the writer stored it (one copy in the page cache
    for every worker); `build` makes a private copy for versions without it.
    """

    items: np.ndarray  # (n, d) float32, C-contiguous, rows in norm order
    norms: np.ndarray  # (n,) float64, descending
    rows: np.ndarray  # (n,) int64: position -> item row
    positions: np.ndarray  # (n,) int64: item row -> position

    @staticmethod
    def build(item_factors: np.ndarray) -> NormOrder:
        factors = np.asarray(item_factors, dtype=np.float32)
        norms = np.empty(len(factors), dtype=np.float64)
        for s in range(0, len(factors), 1 << 13):  # float64 a chunk at a time: no 2x-size temporary
            norms[s : s + (1 << 13)] = np.linalg.norm(factors[s : s + (1 << 13)].astype(np.float64), axis=1)
        rows = np.argsort(-norms, kind="stable")
        positions = np.empty_like(rows)
        positions[rows] = np.arange(len(rows))
        return NormOrder(np.ascontiguousarray(factors[rows]), norms[rows], rows, positions)

    @property
    def n(self) -> int:
        return int(self.items.shape[0])


@dataclass(frozen=True)
class Masks:
    """What each batch row must not be shown: (batch row, item row) pairs and allow-lists.

    allow holds distinct boolean masks over item rows; allow_of[r] is row r's index into it
    or -1 when the row has none.
    """

    pair_rows: np.ndarray
    pair_items: np.ndarray
    allow: np.ndarray | None = None
    allow_of: np.ndarray | None = None

    @staticmethod
    def none() -> Masks:
        empty = np.zeros(0, dtype=np.int64)
        return Masks(empty, empty)

    @staticmethod
    def build(excluded: Sequence[np.ndarray | None], allow: Sequence[np.ndarray | None] | None = None) -> Masks:
        """From each row's excluded item rows (None: none) and allow-mask (None: all)."""
        lens = [0 if e is None else len(e) for e in excluded]
        pair_rows = np.repeat(np.arange(len(excluded), dtype=np.int64), lens)
        parts = [np.asarray(e, dtype=np.int64) for e in excluded if e is not None and len(e)]
        pair_items = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return Masks.from_pairs(pair_rows, pair_items, allow)

    @staticmethod
    def from_pairs(pair_rows: np.ndarray, pair_items: np.ndarray,
                   allow: Sequence[np.ndarray | None] | None = None) -> Masks:
        pair_rows = np.asarray(pair_rows, dtype=np.int64)
        pair_items = np.asarray(pair_items, dtype=np.int64)
        if allow is None or all(a is None for a in allow):
            return Masks(pair_rows, pair_items)
        # Batches usually share one filter: stack each distinct mask once.
        index: dict[int, int] = {}
        distinct: list[np.ndarray] = []
        allow_of = np.full(len(allow), -1, dtype=np.int64)
        for r, a in enumerate(allow):
            if a is None:
                continue
            j = index.setdefault(id(a), len(distinct))
            if j == len(distinct):
                distinct.append(np.asarray(a, dtype=bool))
            allow_of[r] = j
        return Masks(pair_rows, pair_items, np.stack(distinct), allow_of)

    def subset(self, rows: np.ndarray) -> Masks:
        """The masks of batch rows `rows` (ascending), renumbered 0..len(rows)-1."""
        new = np.full(int(rows.max(initial=-1)) + 1, -1, dtype=np.int64)
        new[rows] = np.arange(len(rows))
        inside = self.pair_rows < len(new)
        mapped = np.full(len(self.pair_rows), -1, dtype=np.int64)
        mapped[inside] = new[self.pair_rows[inside]]
        keep = mapped >= 0
        allow_of = None if self.allow_of is None else self.allow_of[rows]
        return Masks(mapped[keep], self.pair_items[keep], self.allow, allow_of)


@dataclass(frozen=True)
class Plan:
    """Block schedule knobs (tuned with bench/bench_scoring.py on trained ALS factors).

    The first block gives every row a threshold. Later blocks grow geometrically (few rows
    left: few calls) but hold about `target` scores at most, so a block of scores stays in
    L2 while it is thresholded. `rows` splits a batch into groups run one after another:
    groups of 64-256 measured slower than the whole batch, as each group streams the items
    again.
    """

    first_per_k: int = 24
    first_min: int = 1024
    growth: float = 1.5
    min_block: int = 1024
    target: int = 1 << 18
    rows: int = 1 << 30
    # Candidates beyond k: enough that the k-th exact score almost always clears the cut by
    # more than float32 rounding (a row where it does not is ranked again with twice as many).
    # On the benchmark model's ALS factors a margin of 2 already left 3 of 2,048 rows at k=100
    # to be widened; 4 left none.
    margin_min: int = 4
    margin_share: float = 0.02

    def candidates(self, ks: np.ndarray, n: int) -> np.ndarray:
        extra = np.maximum(self.margin_min, (ks * self.margin_share).astype(np.int64))
        return np.minimum(n, np.where(ks > 0, ks + extra, 0))


def float32_error(d: int) -> float:
    """Relative bound (of |u| |v|) on a float32 dot product of d terms in any summation order."""
    g = d * 2.0**-24
    return g / (1.0 - g) if g < 0.5 else float("inf")


def rank(order: NormOrder, vectors: np.ndarray, ks: np.ndarray, masks: Masks,
         plan: Plan = Plan()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(item rows, scores, counts): rows (B, kmax) best first; row r's first counts[r] are valid.

    counts[r] = min(ks[r], unmasked items); masked items are never returned. Scores are
    exactdot's, the order is (-score, item row): both are the same whatever else is batched.
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    b, d = vectors.shape
    n = order.n
    ks = np.minimum(np.asarray(ks, dtype=np.int64), n)
    kmax = int(ks.max()) if b else 0
    out_rows = np.full((b, max(kmax, 0)), -1, dtype=np.int64)
    out_vals = np.full((b, max(kmax, 0)), NEG_INF, dtype=np.float32)
    counts = np.zeros(b, dtype=np.int64)
    if kmax <= 0:
        return out_rows, out_vals, counts
    unorm = np.linalg.norm(vectors.astype(np.float64), axis=1)
    # outside the candidates a real score is at most cut + slack (see the module docstring)
    rel = 2.0 * float32_error(d) + 2.0 * exactdot.error_bound(d)
    slack = rel * unorm * float(order.norms[0]) * (1.0 + 1e-9) + 1e-300
    # A zero vector scores exactly 0 against every item in any arithmetic, so the float32
    # candidates (the lowest unmasked rows) are already the answer; without this, the bound
    # could never clear the cut and the row would be widened to the whole catalogue.
    zero = unorm == 0.0
    if b == 1:
        return _rank_one(order, vectors, kmax, masks, plan, float(slack[0]), bool(zero[0]))
    want = plan.candidates(ks, n)
    todo = np.flatnonzero(ks > 0)
    while len(todo):
        sub = masks if len(todo) == b else masks.subset(todo)
        c_rows, c_vals, c_counts = top_k_candidates(order, vectors[todo], want[todo], sub, plan)
        rows, vals, got = _exact_order(order, vectors, todo, c_rows, c_counts, ks[todo])
        kth = vals[np.arange(len(todo)), np.maximum(got - 1, 0)]
        cut = c_vals[np.arange(len(todo)), np.maximum(want[todo] - 1, 0)].astype(np.float64)
        # every (unmasked) item was a candidate, or the k-th exact score beats the cut's bound
        # (rounded to float32 the same way, so a tie at the bound counts as not clear)
        clear = (c_counts < want[todo]) | (want[todo] >= n) | (kth > (cut + slack[todo]).astype(np.float32))
        clear |= zero[todo]
        if len(todo) == b and clear.all():
            return rows, vals, got  # the usual case: every row asked for something and cleared at once
        done = todo[clear]
        out_rows[done, : rows.shape[1]] = rows[clear][:, :kmax]
        out_vals[done, : vals.shape[1]] = vals[clear][:, :kmax]
        counts[done] = got[clear]
        todo = todo[~clear]
        want[todo] = np.minimum(n, 2 * want[todo])
    return out_rows, out_vals, counts


def _rank_one(order: NormOrder, vector: np.ndarray, k: int, masks: Masks, plan: Plan, slack: float,
              zero: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """rank() for one row (k > 0), with the same arithmetic and fewer numpy calls: a lone
    Recommend is the common call, and the batch path's bookkeeping was a third of its time."""
    n = order.n
    want = int(plan.candidates(np.array([k]), n)[0])
    while True:
        c_rows, c_vals, c_counts = top_k_candidates(order, vector, np.array([want]), masks, plan)
        c = int(c_counts[0])
        items = c_rows[0, :c]
        vals = exactdot.scores(vector, order.items, np.zeros(c, dtype=np.int64), order.positions[items])
        rows, scores = decode_keys(np.sort(sort_keys(vals, items))[:k])
        got = len(rows)
        if zero or c < want or want >= n or scores[got - 1] > np.float32(float(c_vals[0, want - 1]) + slack):
            break
        want = min(n, 2 * want)
    if got < k:
        rows = np.concatenate([rows, np.full(k - got, -1, dtype=np.int64)])
        scores = np.concatenate([scores, np.full(k - got, NEG_INF, dtype=np.float32)])
    return rows[None, :], scores[None, :], np.array([got], dtype=np.int64)


def _exact_order(order: NormOrder, vectors: np.ndarray, todo: np.ndarray, c_rows: np.ndarray,
                 c_counts: np.ndarray, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidates scored by exactdot and sorted by (-score, item row); first ks of each row."""
    r = len(todo)
    width = c_rows.shape[1]
    valid = np.arange(width)[None, :] < c_counts[:, None]
    which, slot = np.nonzero(valid)
    items = c_rows[which, slot]
    vals = exactdot.scores(vectors, order.items, todo[which], order.positions[items])
    keys = np.full((r, width), EMPTY, dtype=np.int64)
    keys[which, slot] = sort_keys(vals, items)
    keys.sort(axis=1)
    kmax = int(ks.max()) if r else 0
    keys = keys[:, :kmax]
    got = np.minimum(c_counts, ks)
    rows, scores = decode_keys(keys)
    ok = np.arange(kmax)[None, :] < got[:, None]
    return np.where(ok, rows, -1), np.where(ok, scores, NEG_INF), got


def top_k_candidates(order: NormOrder, vectors: np.ndarray, ks: np.ndarray, masks: Masks,
                     plan: Plan = Plan()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(item rows, float32 block scores, counts): the pruned product's top ks, best first.

    counts[r] = min(ks[r], unmasked items); masked items are never returned. The scores are
    the block products', which move with the batch: rank() only uses them to pick.
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    b = vectors.shape[0]
    ks = np.minimum(np.asarray(ks, dtype=np.int64), order.n)
    kmax = int(ks.max()) if b else 0
    if kmax <= 0:
        return np.zeros((b, 0), np.int64), np.zeros((b, 0), np.float32), np.zeros(b, np.int64)
    st = _State(order, vectors, ks, kmax, masks)
    # rows asking for nothing need no scoring at all
    todo = np.flatnonzero(ks > 0)
    for g in range(0, len(todo), plan.rows):
        st.run(todo[g : g + plan.rows], plan)
    rows, vals = decode_keys(st.best)
    counts = np.minimum((st.best != EMPTY).sum(axis=1), ks)
    valid = np.arange(kmax)[None, :] < counts[:, None]
    return np.where(valid, rows, -1), np.where(valid, vals, NEG_INF), counts


class _State:
    """Per-batch running state: each row's best keys, threshold and norm bound."""

    def __init__(self, order: NormOrder, vectors: np.ndarray, ks: np.ndarray, kmax: int, masks: Masks):
        b = vectors.shape[0]
        self.order, self.vectors, self.ks, self.kmax, self.masks = order, vectors, ks, kmax, masks
        self.best = np.full((b, kmax), EMPTY, dtype=np.int64)
        # FLOOR until a row holds k keys, then its k-th best score and that item's row
        self.thresh = np.full(b, FLOOR, dtype=np.float32)
        self.kth_item = np.full(b, EMPTY, dtype=np.int64)
        self.bound = np.linalg.norm(vectors.astype(np.float64), axis=1) * (1.0 + SLACK)
        # exclusions sorted by position so that each block takes one slice of them, and as
        # sorted keys (batch row, position) to drop hits from blocks that were not masked
        pos = order.positions[masks.pair_items]
        by_pos = np.argsort(pos, kind="stable")
        self.ex_pos, self.ex_row = pos[by_pos], masks.pair_rows[by_pos]
        self.ex_key = np.sort(masks.pair_rows * order.n + pos)
        self.where = np.full(b, -1, dtype=np.int64)
        # scores computed, for the benchmark's account of what pruning saved
        self.scored = 0

    def run(self, live: np.ndarray, plan: Plan) -> None:
        order = self.order
        size = max(plan.first_min, plan.first_per_k * self.kmax)
        s = 0
        while s < order.n:
            if s:
                # rows whose bound still reaches their k-th best (FLOOR: always)
                live = live[self.bound[live] * order.norms[s] + 1e-30 >= self.thresh[live]]
                if not len(live):
                    break
                size = min(int(size * plan.growth), max(plan.min_block, plan.target // len(live)))
            e = min(order.n, s + size)
            scores = self.vectors[live] @ order.items[s:e].T
            self.scored += scores.size
            t = self.thresh[live]
            need = t == FLOOR
            # Rows still short of k keys take a threshold from this block, so masked
            # items must be out of it first; otherwise masking waits for the few hits.
            masked = bool(need.any())
            if masked:
                self._mask(scores, live, s, e)
                t[need] = np.maximum(t[need], _block_kth(scores[need], self.ks[live[need]], self.kmax))
            # only rows whose block maximum reaches the threshold have anything to add
            some = np.flatnonzero(scores.max(axis=1) >= t)
            if len(some):
                self._hits(scores, live, some, t, s, masked)
            s = e

    def _hits(self, scores: np.ndarray, live: np.ndarray, some: np.ndarray, t: np.ndarray, s: int,
              masked: bool) -> None:
        sub = scores if len(some) == len(live) else scores[some]
        # flat nonzero is several times faster than the 2-D form
        flat = np.flatnonzero(sub >= t[some, None])
        n = scores.shape[1]
        hit, vals, pos = flat // n, sub.ravel()[flat], s + flat % n
        rows = live[some]
        items = self.order.rows[pos]
        # a tie with the k-th best only enters from a lower item row (many ties: zero vectors)
        enter = (vals > t[some][hit]) | (items < self.kth_item[rows][hit])
        if not masked:
            enter &= self._allowed(rows[hit], pos, items)
        if not enter.all():
            hit, vals, items = hit[enter], vals[enter], items[enter]
        if len(hit):
            self._merge(rows, hit, vals, items)

    def _allowed(self, rows: np.ndarray, pos: np.ndarray, items: np.ndarray) -> np.ndarray:
        ok = np.ones(len(rows), dtype=bool)
        if len(self.ex_key):
            key = rows * self.order.n + pos
            at = np.minimum(np.searchsorted(self.ex_key, key), len(self.ex_key) - 1)
            ok = self.ex_key[at] != key
        masks = self.masks
        if masks.allow is not None and masks.allow_of is not None:
            of = masks.allow_of[rows]
            ok &= (of < 0) | masks.allow[np.maximum(of, 0), items]
        return ok

    def _mask(self, scores: np.ndarray, live: np.ndarray, s: int, e: int) -> None:
        lo, hi = np.searchsorted(self.ex_pos, (s, e))
        if hi > lo:
            self.where[live] = np.arange(len(live))
            at = self.where[self.ex_row[lo:hi]]
            self.where[live] = -1
            sel = at >= 0
            scores[at[sel], self.ex_pos[lo:hi][sel] - s] = NEG_INF
        masks = self.masks
        if masks.allow is not None and masks.allow_of is not None:
            of = masks.allow_of[live]
            sel = np.flatnonzero(of >= 0)
            if len(sel):
                allowed = masks.allow[:, self.order.rows[s:e]][of[sel]]
                scores[sel] = np.where(allowed, scores[sel], NEG_INF)

    def _merge(self, rows: np.ndarray, hit: np.ndarray, vals: np.ndarray, items: np.ndarray) -> None:
        """Adds hits (hit: index into rows, ascending) to the rows' best keys; updates thresholds."""
        keys = sort_keys(vals, items)
        if hit[0] == hit[-1]:
            # one row (always so for B=1): fewer, cheaper steps
            r = int(rows[hit[0]])
            merged = np.concatenate((self.best[r], keys))
            merged.sort()
            self.best[r] = merged[: self.kmax]
            kth = merged[self.ks[r] - 1 : self.ks[r]]
            if kth[0] != EMPTY:
                item, score = decode_keys(kth)
                self.kth_item[r], self.thresh[r] = item[0], score[0]
            return
        starts = np.flatnonzero(np.diff(hit, prepend=-1))
        counts = np.diff(starts, append=len(hit))
        target = rows[hit[starts]]
        kmax = self.kmax
        width = int(counts.max())
        if width > 4 * kmax + 64:
            # rows with masses of hits (ties of a zero vector) are cut to their best kmax first
            keys, counts = _cut(keys, starts, counts, kmax)
            starts = np.cumsum(counts) - counts
            width = int(counts.max())
        dense = np.full((len(starts), kmax + width), EMPTY, dtype=np.int64)
        slot = np.arange(len(keys)) - np.repeat(starts, counts)
        dense[np.repeat(np.arange(len(starts)), counts), kmax + slot] = keys
        dense[:, :kmax] = self.best[target]
        dense.sort(axis=1)
        self.best[target] = dense[:, :kmax]
        kth = dense[np.arange(len(target)), self.ks[target] - 1]
        ok = kth != EMPTY
        self.kth_item[target[ok]], self.thresh[target[ok]] = decode_keys(kth[ok])


def _cut(keys: np.ndarray, starts: np.ndarray, counts: np.ndarray, kmax: int) -> tuple[np.ndarray, np.ndarray]:
    parts = []
    for st, c in zip(starts.tolist(), counts.tolist(), strict=True):
        seg = keys[st : st + c]
        parts.append(np.partition(seg, kmax - 1)[:kmax] if c > kmax else seg)
    return np.concatenate(parts), np.array([len(p) for p in parts], dtype=np.int64)


def _block_kth(scores: np.ndarray, ks: np.ndarray, kmax: int) -> np.ndarray:
    """A lower bound on each row's ks-th best in this block (FLOOR if it has fewer unmasked).

    The ks-th largest of group maxima is one: ks groups each hold a score that large.
    Strided groups make the maxima one pass of SIMD maximum over contiguous rows, and
    partitioning n / GROUP maxima costs a fraction of partitioning all n scores.
    """
    b, n = scores.shape
    groups = n // GROUP
    top = np.max(scores[:, : groups * GROUP].reshape(b, GROUP, groups), axis=1) if groups >= 4 * kmax else scores
    m = top.shape[1]
    if kmax < m:
        top = np.partition(top, m - kmax, axis=1)[:, m - kmax :]
    top = np.sort(top, axis=1)
    m = top.shape[1]
    kth = top[np.arange(b), m - np.minimum(ks, m)]
    kth[ks > m] = FLOOR
    out: np.ndarray = np.maximum(kth, FLOOR)
    return out
