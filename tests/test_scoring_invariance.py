"""In-process: scoring.rank's scores and order are one function of (user, item, k), whatever
else is batched, wherever blocks fall, and at whatever offset a page starts.

Float factors with spread norms, duplicated items (exact ties) and zero vectors: the
reference is every item scored by exactdot and sorted by (-score, item row); the kernel
must return its first k bit for bit, alone and in any batch, under any block plan.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reco_sidecar.engine import exactdot, scoring
from reco_sidecar.engine.topk import sort_keys

PLANS = [
    scoring.Plan(),
    scoring.Plan(first_per_k=2, first_min=3, growth=1.5, min_block=2, target=64),
    scoring.Plan(first_per_k=1, first_min=1, growth=1.0, min_block=1, target=1, margin_min=1, margin_share=0.0),
    scoring.Plan(first_min=7, min_block=5, target=300, rows=3),
]


def factors(seed: int, n: int, b: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    items = (rng.standard_normal((n, d)) * rng.lognormal(0, 1, (n, 1))).astype(np.float32)
    if n > 2:
        items[rng.integers(0, n, n // 4)] = items[rng.integers(0, n, n // 4)]  # exact ties
        # near ties: a few ulp apart, closer than float32 rounding of a product can tell
        near = rng.integers(0, n, n // 3)
        items[near] = near_copies(items[int(rng.integers(0, n))], len(near), rng)
        items[rng.integers(0, n, max(1, n // 20))] = 0.0
    users = rng.standard_normal((b, d)).astype(np.float32)
    if b > 1:
        users[rng.integers(0, b)] = 0.0  # every item ties at 0
    return users, items


def near_copies(v: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    wiggle = rng.integers(-8, 9, (count, len(v))).astype(np.float32) * np.float32(2.0**-22)
    copies: np.ndarray = (v[None, :] * (np.float32(1.0) + wiggle)).astype(np.float32)
    return copies


def reference(user: np.ndarray, items: np.ndarray, k: int, excluded: np.ndarray) -> tuple[list[int], np.ndarray]:
    scores = exactdot.one_vector(user, items)
    rows = np.setdiff1d(np.arange(len(items)), excluded)
    order = np.argsort(sort_keys(scores[rows], rows), kind="stable")[:k]
    return rows[order].tolist(), scores[rows[order]]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 700), b=st.integers(1, 40), d=st.integers(1, 48),
       plan=st.sampled_from(PLANS), data=st.data())
def test_rank_is_the_reference_alone_and_in_any_batch(seed: int, n: int, b: int, d: int, plan: scoring.Plan,
                                                      data: st.DataObject) -> None:
    users, items = factors(seed, n, b, d)
    rng = np.random.default_rng(seed + 1)
    ks = rng.integers(1, n + 3, b)
    excluded = [rng.choice(n, int(rng.integers(0, min(n, 25) + 1)), replace=False) for _ in range(b)]
    order = scoring.NormOrder.build(items)
    # a random batch composition: a subset of the users in a random order
    pick = data.draw(st.permutations(list(range(b))).map(lambda p: p[: max(1, len(p) // 2)] if len(p) > 3 else p))
    masks = scoring.Masks.build([excluded[i] for i in pick])
    rows, vals, counts = scoring.rank(order, users[pick], ks[pick], masks, plan)
    for j, i in enumerate(pick):
        want_rows, want_vals = reference(users[i], items, int(ks[i]), excluded[i])
        assert rows[j, : counts[j]].tolist() == want_rows, f"user {i} of {pick}"
        assert vals.dtype == np.float32
        np.testing.assert_array_equal(vals[j, : counts[j]], want_vals)


def test_pages_concatenate_to_the_long_list_and_batch_sizes_agree() -> None:
    users, items = factors(11, 3000, 64, 32)
    order = scoring.NormOrder.build(items)
    long_rows, long_vals, _ = scoring.rank(order, users, np.full(64, 400), scoring.Masks.none())
    for b in (1, 3, 17, 64):
        for start in range(0, 64, b):
            part = slice(start, start + b)
            rows, vals, _ = scoring.rank(order, users[part], np.full(len(users[part]), 400), scoring.Masks.none())
            np.testing.assert_array_equal(rows, long_rows[part])
            np.testing.assert_array_equal(vals, long_vals[part])
    # a page is a prefix of the longer list: offsets can never overlap or skip
    for k in (1, 37, 122, 399):
        rows, vals, _ = scoring.rank(order, users, np.full(64, k), scoring.Masks.none())
        np.testing.assert_array_equal(rows, long_rows[:, :k])
        np.testing.assert_array_equal(vals, long_vals[:, :k])


def test_exactdot_does_not_depend_on_how_many_pairs_are_scored() -> None:
    rng = np.random.default_rng(3)
    for d in (1, 2, 3, 16, 33, 64, 100):
        users = rng.standard_normal((50, d)).astype(np.float32)
        items = (rng.standard_normal((500, d)) * 10.0 ** rng.uniform(-3, 3, (500, 1))).astype(np.float32)
        pv, pi = rng.integers(0, 50, 40_000), rng.integers(0, 500, 40_000)
        together = exactdot.scores(users, items, pv, pi)
        alone = np.array([exactdot.scores(users, items, pv[i : i + 1], pi[i : i + 1])[0]
                          for i in range(0, 40_000, 997)])
        np.testing.assert_array_equal(together[::997], alone)
        exact = (users[pv].astype(np.float64) * items[pi].astype(np.float64)).sum(axis=1)
        scale = np.abs(users[pv].astype(np.float64) * items[pi]).sum(axis=1)
        # within float32 rounding of the float64 value (plus the tree's own tiny error)
        assert np.all(np.abs(together - exact) <= np.abs(exact) * 2.0**-24 + scale * exactdot.error_bound(d) + 1e-45)


def test_widening_when_the_margin_is_too_thin() -> None:
    """Thousands of items within float32 rounding of each other at the cut: the float32
    product orders them wrongly, the first candidates cannot clear the bound, the kernel
    widens until they do and returns the exact order, under every plan and batch size."""
    rng = np.random.default_rng(5)
    d = 64
    items = near_copies(rng.standard_normal(d).astype(np.float32), 2000, rng)
    items[:50] *= 2.0
    users = rng.standard_normal((4, d)).astype(np.float32)
    users[1] = -users[0]
    order = scoring.NormOrder.build(items)
    product_order = np.argsort(-(users[0] @ items.T), kind="stable")[:120]
    want = [reference(users[r], items, 120, np.zeros(0, np.int64)) for r in range(4)]
    assert product_order.tolist() != want[0][0], "the float32 product must get this order wrong"
    for plan in PLANS:
        for b in (1, 4):
            rows, vals, counts = scoring.rank(order, users[:b], np.full(b, 120), scoring.Masks.none(), plan)
            assert counts.tolist() == [120] * b
            for r in range(b):
                assert rows[r].tolist() == want[r][0]
                np.testing.assert_array_equal(vals[r], want[r][1])
