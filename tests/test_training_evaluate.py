import numpy as np
import pytest
import scipy.sparse as sp

from reco_sidecar.training import als, bpr, demo_data
from reco_sidecar.training.evaluate import evaluate, factor_scorer, popularity_scorer, rank, sample_users
from reco_sidecar.training.interactions import Builder
from reco_sidecar.training.split import Split, holdout

SPEC = demo_data.DemoSpec(users=800, items=400, interactions=24_000, clusters=6, seed=11)


@pytest.fixture(scope="module")
def split() -> Split:
    users, items, w, _, _ = demo_data.generate(SPEC)
    b = Builder()
    b.add_arrays([demo_data.user_id(u) for u in users], [demo_data.item_id(i) for i in items], w)
    return holdout(b.build().matrix, 0.2, seed=7)


def test_rank_leaves_out_training_items_and_pads_short_lists() -> None:
    train = sp.csr_matrix(np.array([[1, 0, 1, 0], [1, 1, 1, 0]], dtype=np.float32))
    scores = np.array([[4.0, 3.0, 2.0, 1.0], [4.0, 3.0, 2.0, 1.0]], dtype=np.float32)
    out = rank(lambda users: scores[users], train, np.array([0, 1]), 3)
    assert out.tolist() == [[1, 3, -1], [3, -1, -1]]


def test_popularity_ranks_by_training_users_ties_to_lower_row() -> None:
    train = sp.csr_matrix(np.array([[0, 1, 1, 0, 0], [0, 1, 0, 0, 1], [0, 0, 0, 0, 0]], dtype=np.float32))
    out = rank(popularity_scorer(train), train, np.array([2]), 3)
    assert out.tolist() == [[1, 2, 4]]


@pytest.mark.parametrize("params", [
    als.AlsParams(factors=24, iterations=10, regularization=1.0, alpha=10.0),
    bpr.BprParams(factors=24, iterations=60),
], ids=["als", "bpr"])
def test_trained_model_beats_popularity_on_planted_tastes(split: Split, params: als.AlsParams | bpr.BprParams) -> None:
    users, items = (als.train(split.train, params) if isinstance(params, als.AlsParams)
                    else bpr.train(split.train, params))
    m = evaluate(split, users, items, k=10)
    assert m["ndcg_at_10"] > 1.3 * m["baseline_ndcg_at_10"]
    assert m["recall_at_10"] > 1.3 * m["baseline_recall_at_10"]
    assert m["coverage_at_10"] > m["baseline_coverage_at_10"]
    assert m["eval_users"] == len(split.test_users)


def test_random_factors_do_not_beat_popularity(split: Split) -> None:
    # The comparison must be able to fail: factors that know nothing lose to popularity.
    rng = np.random.default_rng(0)
    users = rng.normal(size=(split.train.shape[0], 8)).astype(np.float32)
    items = rng.normal(size=(split.train.shape[1], 8)).astype(np.float32)
    m = evaluate(split, users, items, k=10)
    assert m["ndcg_at_10"] < m["baseline_ndcg_at_10"]


def test_a_user_sample_is_seeded_scored_like_the_whole_and_counts_its_own_held_out_items(split: Split) -> None:
    """Past `max_users` held-out users, a seeded sample is scored: the same sample for the same
    seed, each sampled user ranked exactly as in the full evaluation, and the counts its own."""
    users, items = als.train(split.train, als.AlsParams(factors=16, iterations=6))
    everyone = evaluate(split, users, items, k=10)
    assert evaluate(split, users, items, k=10, max_users=len(split.test_users)) == everyone
    half = len(split.test_users) // 2
    sampled = evaluate(split, users, items, k=10, max_users=half, seed=3)
    assert sampled == evaluate(split, users, items, k=10, max_users=half, seed=3)
    assert sampled != evaluate(split, users, items, k=10, max_users=half, seed=4)
    assert sampled["eval_users"] == half and sampled["eval_users_held_out"] == len(split.test_users)
    chosen = sample_users(split.test_users, half, 3)
    assert sampled["eval_held_out_items"] == np.diff(split.test.indptr)[chosen].sum() < split.test.nnz
    # Each sampled user's list is the one the full evaluation gives that user.
    score = factor_scorer(users, items)
    full = rank(score, split.train, split.test_users, 10)
    part = rank(score, split.train, chosen, 10)
    assert (part == full[np.searchsorted(split.test_users, chosen)]).all()
