"""Scores a trained model and a popularity baseline on the same hold-out split.

Both rank every item for each test user with the user's training items left out, exactly
as serving does (same top-k, ties to the lower item row), so the numbers describe what
users would be shown.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from reco_sidecar.common import logs
from reco_sidecar.engine.topk import select
from reco_sidecar.training import progress
from reco_sidecar.training.metrics import ranking_metrics
from reco_sidecar.training.split import Split

log = logs.get(__name__)

Scorer = Callable[[np.ndarray], np.ndarray]
# Users scored per matrix product: a few MB of scores per block at 100k items.
BLOCK = 256


def rank(score: Scorer, train: sp.csr_matrix, users: np.ndarray, k: int, *,
         show_progress: bool | None = None, desc: str = "ranking") -> np.ndarray:
    """(len(users), k) item rows, best first; -1 where a user has fewer than k unseen items."""
    out = np.full((len(users), k), -1, dtype=np.int64)
    blocks = range(0, len(users), BLOCK)
    for start in progress.iterate(blocks, show_progress, desc=desc, total=len(blocks), unit=" blocks"):
        block = users[start : start + BLOCK]
        scores = np.array(score(block), dtype=np.float32)
        seen = train[block]
        scores[np.repeat(np.arange(len(block)), np.diff(seen.indptr)), seen.indices] = -np.inf
        rows, vals = select(scores, k)
        rows = np.where(np.isfinite(vals), rows, -1)
        out[start : start + len(block), : rows.shape[1]] = rows
    return out


def sample_users(users: np.ndarray, max_users: int, seed: int) -> np.ndarray:
    """`users` when max_users is 0 or not fewer; else a seeded sample of them, in row order."""
    if max_users <= 0 or len(users) <= max_users:
        return users
    return np.sort(np.random.default_rng(seed).choice(users, size=max_users, replace=False))


def factor_scorer(user_factors: np.ndarray, item_factors: np.ndarray) -> Scorer:
    return lambda users: np.asarray(user_factors[users] @ item_factors.T)


def popularity_scorer(train: sp.csr_matrix) -> Scorer:
    popularity = np.bincount(train.indices, minlength=train.shape[1]).astype(np.float32)
    return lambda users: np.broadcast_to(popularity, (len(users), len(popularity)))


def evaluate(split: Split, user_factors: np.ndarray, item_factors: np.ndarray, k: int = 10, *,
             show_progress: bool | None = None, max_users: int = 0, seed: int = 7) -> dict[str, float]:
    """Flat metrics: `<metric>_at_<k>` for the model, `baseline_<metric>_at_<k>` for popularity,
    over the held-out users, or a seeded sample of `max_users` of them when there are more."""
    users = sample_users(split.test_users, max_users, seed)
    model_top = rank(factor_scorer(user_factors, item_factors), split.train, users, k,
                     show_progress=show_progress, desc="evaluating model")
    baseline_top = rank(popularity_scorer(split.train), split.train, users, k,
                        show_progress=show_progress, desc="evaluating baseline")
    model = ranking_metrics(model_top, users, split.test, k)
    baseline = ranking_metrics(baseline_top, users, split.test, k)
    out = {f"{name}_at_{k}": value for name, value in model.items()}
    out.update({f"baseline_{name}_at_{k}": value for name, value in baseline.items()})
    out["eval_users"] = float(len(users))
    out["eval_held_out_items"] = float(np.diff(split.test.indptr)[users].sum())
    out["eval_users_held_out"] = float(len(split.test_users))
    log.info("evaluated", k=k, **{name: round(v, 4) for name, v in out.items()})
    return out
