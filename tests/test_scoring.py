"""Pruned top-k (reco_sidecar.engine.scoring) against brute force: argsort of the masked scores.

Factors are small multiples of powers of two, so every dot product is exact in float32
whatever order BLAS sums in: the kernel's scores must then equal the plain product's bit
for bit, and its rows the stable argsort's (ties to the lower item row). Random float
factors are checked too, with a rounding tolerance.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from reco_sidecar.engine import scoring
from reco_sidecar.engine.model import Model
from reco_sidecar.engine.query import RecQuery

# Small blocks so that catalogues of a few hundred items take many blocks and prune.
TINY = scoring.Plan(first_per_k=2, first_min=3, growth=1.5, min_block=2, target=64)
PLANS = [TINY, scoring.Plan(first_per_k=1, first_min=1, growth=1.0, min_block=1, target=1), scoring.Plan()]


def brute(users: np.ndarray, items: np.ndarray, ks: np.ndarray, excluded: list[np.ndarray | None],
          allow: list[np.ndarray | None] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    scores = users @ items.T
    out = []
    for r in range(len(users)):
        row = scores[r].copy()
        if excluded[r] is not None:
            row[excluded[r]] = -np.inf
        allowed = allow[r] if allow is not None else None
        if allowed is not None:
            row[~allowed] = -np.inf
        top = np.argsort(-row, kind="stable")[: ks[r]]
        top = top[row[top] > -np.inf]
        out.append((top, row[top]))
    return out


def run(users: np.ndarray, items: np.ndarray, ks: np.ndarray, excluded: list[np.ndarray | None],
        allow: list[np.ndarray | None] | None = None, plan: scoring.Plan = TINY
        ) -> list[tuple[np.ndarray, np.ndarray]]:
    order = scoring.NormOrder.build(items)
    rows, vals, counts = scoring.rank(order, users, ks, scoring.Masks.build(excluded, allow), plan)
    assert rows.shape == vals.shape == (len(users), max([0, *[min(int(k), len(items)) for k in ks]]))
    return [(rows[r, : counts[r]], vals[r, : counts[r]]) for r in range(len(users))]


def assert_same(got: list[tuple[np.ndarray, np.ndarray]], want: list[tuple[np.ndarray, np.ndarray]]) -> None:
    assert len(got) == len(want)
    for r, ((gr, gv), (wr, wv)) in enumerate(zip(got, want, strict=True)):
        assert gr.tolist() == wr.tolist(), f"row {r}"
        assert gv.dtype == np.float32
        np.testing.assert_array_equal(gv, wv, err_msg=f"row {r}")


def dyadic(rng: np.random.Generator, shape: tuple[int, int], skew: bool = False) -> np.ndarray:
    """Integers in [-4, 4] times powers of two: sums of 64 such products stay exact in float32."""
    x = rng.integers(-4, 5, shape).astype(np.float32)
    if skew:
        # power-law row norms, as trained factors of popular and rare items have
        x *= np.float32(2.0) ** rng.integers(-6, 3, (shape[0], 1)).astype(np.float32)
    return x


def random_case(rng: np.random.Generator, n: int, b: int, d: int, *, skew: bool, ties: bool
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray | None]]:
    items = dyadic(rng, (n, d), skew)
    if ties and n > 1:
        # duplicate item vectors: exactly equal scores, to be ordered by item row
        src = rng.integers(0, n, n // 3)
        items[rng.integers(0, n, n // 3)] = items[src]
    users = dyadic(rng, (b, d))
    ks = rng.integers(1, n + 5, b)
    excluded: list[np.ndarray | None] = [
        rng.choice(n, int(rng.integers(0, min(n, 30) + 1)), replace=False) if rng.random() < 0.8 else None
        for _ in range(b)
    ]
    return users, items, ks, excluded


@pytest.mark.parametrize("plan", PLANS)
@pytest.mark.parametrize("skew", [False, True])
@pytest.mark.parametrize("ties", [False, True])
def test_matches_brute_force(plan: scoring.Plan, skew: bool, ties: bool) -> None:
    rng = np.random.default_rng([skew, ties, PLANS.index(plan)])
    for _ in range(25):
        n, b, d = int(rng.integers(1, 700)), int(rng.choice([1, 2, 7, 40])), int(rng.integers(1, 20))
        users, items, ks, excluded = random_case(rng, n, b, d, skew=skew, ties=ties)
        assert_same(run(users, items, ks, excluded, plan=plan), brute(users, items, ks, excluded))


def test_single_user_and_batch_agree() -> None:
    rng = np.random.default_rng(1)
    users, items, ks, excluded = random_case(rng, 501, 33, 16, skew=True, ties=True)
    together = run(users, items, ks, excluded)
    alone = [run(users[r : r + 1], items, ks[r : r + 1], [excluded[r]])[0] for r in range(len(users))]
    assert_same(together, alone)


def test_k_larger_than_unmasked_items_returns_every_unmasked_item() -> None:
    rng = np.random.default_rng(2)
    items = dyadic(rng, (50, 8), skew=True)
    users = dyadic(rng, (3, 8))
    excluded: list[np.ndarray | None] = [np.arange(45), np.arange(0, 50, 2), None]
    got = run(users, items, np.array([10, 1000, 60]), excluded)
    assert [len(r) for r, _ in got] == [5, 25, 50]
    assert_same(got, brute(users, items, np.array([10, 1000, 60]), excluded))


def test_all_items_masked_returns_nothing() -> None:
    rng = np.random.default_rng(3)
    items, users = dyadic(rng, (300, 8)), dyadic(rng, (4, 8))
    excluded: list[np.ndarray | None] = [np.arange(300), np.arange(300), None, np.arange(299)]
    allow: list[np.ndarray | None] = [None, None, np.zeros(300, dtype=bool), None]
    got = run(users, items, np.full(4, 20), excluded, allow)
    assert [len(r) for r, _ in got] == [0, 0, 0, 1]
    assert_same(got, brute(users, items, np.full(4, 20), excluded, allow))


def test_allow_masks_shared_and_distinct() -> None:
    rng = np.random.default_rng(4)
    for _ in range(20):
        n = int(rng.integers(1, 400))
        users, items, ks, excluded = random_case(rng, n, 12, 8, skew=True, ties=True)
        shared = rng.random(n) < 0.3
        allow: list[np.ndarray | None] = [
            shared if r % 3 == 0 else (rng.random(n) < 0.05) if r % 3 == 1 else None for r in range(12)
        ]
        assert_same(run(users, items, ks, excluded, allow), brute(users, items, ks, excluded, allow))


def test_zero_vectors_and_zero_items_tie_to_the_lowest_rows() -> None:
    rng = np.random.default_rng(5)
    items = dyadic(rng, (400, 8), skew=True)
    items[rng.integers(0, 400, 100)] = 0.0
    users = dyadic(rng, (4, 8))
    users[1] = 0.0
    ks = np.array([30, 30, 400, 7])
    excluded: list[np.ndarray | None] = [None, np.arange(0, 400, 3), None, None]
    got = run(users, items, ks, excluded)
    assert got[1][0].tolist() == [r for r in range(400) if r % 3][:30]
    assert_same(got, brute(users, items, ks, excluded))


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_tiny_catalogues(n: int) -> None:
    rng = np.random.default_rng(n)
    for _ in range(10):
        users, items, ks, excluded = random_case(rng, n, 3, 4, skew=True, ties=True)
        ks = np.array([0, 1, n + 3])
        for plan in PLANS:
            assert_same(run(users, items, ks, excluded, plan=plan), brute(users, items, ks, excluded))


def test_zero_k_and_empty_batch() -> None:
    order = scoring.NormOrder.build(np.ones((10, 4), dtype=np.float32))
    rows, _vals, counts = scoring.rank(order, np.ones((2, 4), np.float32), np.zeros(2, np.int64),
                                       scoring.Masks.none())
    assert rows.shape == (2, 0) and counts.tolist() == [0, 0]
    rows, _vals, counts = scoring.rank(order, np.zeros((0, 4), np.float32), np.zeros(0, np.int64),
                                       scoring.Masks.none())
    assert rows.shape == (0, 0) and len(counts) == 0


def test_negative_scores_and_negative_zero() -> None:
    items = np.array([[1.0], [-1.0], [0.0], [-0.0], [2.0], [-2.0]], dtype=np.float32)
    users = np.array([[-1.0], [1.0]], dtype=np.float32)
    ks = np.array([6, 6])
    assert_same(run(users, items, ks, [None, None]), brute(users, items, ks, [None, None]))


def test_random_float_factors_within_rounding() -> None:
    """Unrestricted float32 factors: BLAS may round each score differently in a block than in
    the whole product, so rows may swap only where scores agree to rounding."""
    rng = np.random.default_rng(6)
    d = 32
    items = (rng.standard_normal((3000, d)) * rng.lognormal(0, 1, (3000, 1))).astype(np.float32)
    users = rng.standard_normal((50, d)).astype(np.float32)
    ks = np.full(50, 40)
    excluded: list[np.ndarray | None] = [rng.choice(3000, 25, replace=False) for _ in range(50)]
    plain = users @ items.T
    for r, (rows, vals) in enumerate(run(users, items, ks, excluded, plan=scoring.Plan())):
        tol = 1e-5 * np.linalg.norm(users[r]) * np.linalg.norm(items, axis=1).max()
        _want_rows, want_vals = brute(users[r : r + 1], items, ks[r : r + 1], [excluded[r]])[0]
        np.testing.assert_allclose(vals, plain[r, rows], rtol=0, atol=tol)
        np.testing.assert_allclose(vals, want_vals, rtol=0, atol=tol)
        assert not set(rows.tolist()) & set(excluded[r].tolist())  # type: ignore[union-attr]
        assert np.all(np.diff(vals) <= 0)
        # anything left out scores no better than the last kept, up to rounding
        rest = np.setdiff1d(np.arange(3000), np.concatenate([rows, excluded[r]]))
        assert plain[r, rest].max() <= vals[-1] + tol


def test_pruning_skips_items_on_skewed_norms() -> None:
    """Not a timing: with spread item norms most items are never scored."""
    rng = np.random.default_rng(7)
    items = (rng.standard_normal((20_000, 16)) * rng.pareto(2.0, (20_000, 1))).astype(np.float32)
    users = rng.standard_normal((8, 16)).astype(np.float32)
    order = scoring.NormOrder.build(items)
    state = scoring._State(order, users, np.full(8, 10), 10, scoring.Masks.none())
    state.run(np.arange(8), scoring.Plan())
    assert state.scored < 0.5 * 8 * 20_000


# -- Model.recommend: the same semantics as before pruning -------------------------------------


@pytest.fixture(scope="module")
def exact_model(demo_version_dir: pathlib.Path) -> Model:
    """The demo model with dyadic factors (exact scores), so rankings compare bit for bit."""
    import dataclasses

    from reco_sidecar.artifact import loader

    model = loader.open_model(demo_version_dir, )
    rng = np.random.default_rng(8)
    users = dyadic(rng, model.user_factors.shape)
    items = dyadic(rng, model.item_factors.shape, skew=True)
    items[rng.integers(0, len(items), len(items) // 4)] = items[rng.integers(0, len(items), len(items) // 4)]
    return dataclasses.replace(model, user_factors=users, item_factors=items, norm_order=scoring.NormOrder.build(items))


def reference(model: Model, q: RecQuery) -> tuple[np.ndarray, np.ndarray]:
    """What Model.recommend returned before pruning: mask the full product, stable argsort."""
    vector = q.vector if q.vector is not None else model.user_factors[q.user_row]
    full = model.item_factors @ vector
    r = q.restriction
    scores = np.full(len(full), -np.inf, dtype=np.float32)
    if r.candidate_rows is None:
        scores[:] = full
    else:
        scores[r.candidate_rows] = full[r.candidate_rows]
    if q.user_row is not None and not q.include_seen:
        scores[model.seen_rows(q.user_row)] = -np.inf
    if q.seen_rows is not None and not q.include_seen:
        scores[q.seen_rows] = -np.inf
    scores[r.exclude_rows] = -np.inf
    if r.allow_mask is not None:
        scores[~r.allow_mask] = -np.inf
    top = np.argsort(-scores, kind="stable")[: q.k]
    top = top[scores[top] > -np.inf][q.offset :]
    return top, scores[top]


def queries(model: Model, rng: np.random.Generator) -> list[RecQuery]:
    from reco_sidecar.engine.query import Restriction

    n_items, n_users = model.item_factors.shape[0], model.user_factors.shape[0]
    shared = np.asarray(rng.random(n_items) < 0.4)
    out: list[RecQuery] = []
    for i in range(60):
        exclude = rng.choice(n_items, int(rng.integers(0, 20)), replace=False).astype(np.int64)
        cand = rng.choice(n_items, int(rng.integers(1, 80)), replace=False) if i % 7 == 3 else None
        allow = shared if i % 5 == 1 else np.asarray(rng.random(n_items) < 0.1) if i % 5 == 2 else None
        restriction = Restriction(exclude, cand, allow)
        offset, n = int(rng.integers(0, 30)), int(rng.integers(0, 60))
        if i % 4 == 0:
            vector = dyadic(rng, (1, model.factors))[0]
            seen = rng.choice(n_items, 10, replace=False) if i % 8 == 0 else None
            out.append(RecQuery(offset, n, restriction, vector=vector, seen_rows=seen,
                                include_seen=bool(i % 3 == 0)))
        else:
            out.append(RecQuery(offset, n, restriction, user_row=int(rng.integers(0, n_users)),
                                include_seen=bool(i % 6 == 5)))
    return out


def test_model_recommend_matches_masked_argsort(exact_model: Model) -> None:
    from reco_sidecar.engine.query import Provenance

    qs = queries(exact_model, np.random.default_rng(9))
    for batch in (qs, qs[:1], qs[1:9], qs[:33]):
        got = exact_model.recommend(batch)
        assert len(got) == len(batch)
        for q, ranked in zip(batch, got, strict=True):
            rows, scores = reference(exact_model, q)
            assert ranked.rows.tolist() == rows.tolist()
            np.testing.assert_array_equal(ranked.scores, scores)
            assert ranked.source == (Provenance.FOLD_IN if q.vector is not None else Provenance.MODEL)


def test_model_recommend_on_trained_factors(demo_version_dir: pathlib.Path) -> None:
    """Trained (float) factors: same items as the plain product, scores within rounding."""
    from reco_sidecar.artifact import loader

    model = loader.open_model(demo_version_dir, )
    qs = [q for q in queries(model, np.random.default_rng(10)) if q.vector is None]
    for q, ranked in zip(qs, model.recommend(qs), strict=True):
        rows, scores = reference(model, q)
        tol = 1e-5 * float(np.abs(scores).max(initial=1.0))
        assert len(ranked.rows) == len(rows)
        np.testing.assert_allclose(ranked.scores, scores, rtol=0, atol=tol)
        # a row may differ from the reference's only where the two score the same to rounding
        plain = model.item_factors[ranked.rows] @ model.user_factors[q.user_row]
        np.testing.assert_allclose(plain, scores, rtol=0, atol=tol)
        assert len(set(ranked.rows.tolist())) == len(rows)
        assert not set(ranked.rows.tolist()) & set(q.restriction.exclude_rows.tolist())
