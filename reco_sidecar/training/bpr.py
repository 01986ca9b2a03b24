"""Bayesian Personalized Ranking via the implicit library.

implicit's BPR learns an item bias as one extra factor: `user_factors` end in a column of
ones and `item_factors` in the item biases, so the plain dot product of the stored rows
is the model's full score and the artifact needs nothing special to serve it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits


@dataclass(frozen=True)
class BprParams:
    factors: int = 64
    iterations: int = 100
    learning_rate: float = 0.01
    regularization: float = 0.01
    seed: int = 7

    def as_dict(self) -> dict[str, float | int]:
        return {"factors": self.factors, "iterations": self.iterations, "learning_rate": self.learning_rate,
                "regularization": self.regularization, "seed": self.seed}


def liked(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """The pairs BPR learns from. BPR only asks whether a pair was liked, so the weights play no
    part; a pair whose value is not positive (a skip or hide outweighing the rest) is no like."""
    out = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    out.data = np.maximum(out.data, 0.0)
    out.eliminate_zeros()
    return out


def train(matrix: sp.csr_matrix, params: BprParams, *,
          progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(user_factors, item_factors), float32, each factors + 1 wide (the bias column)."""
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    with threadpool_limits(1, "blas"):
        model = BayesianPersonalizedRanking(
            factors=params.factors,
            learning_rate=params.learning_rate,
            regularization=params.regularization,
            iterations=params.iterations,
            random_state=params.seed,
        )
        model.fit(liked(matrix), show_progress=progress)
    return (np.ascontiguousarray(model.user_factors, dtype=np.float32),
            np.ascontiguousarray(model.item_factors, dtype=np.float32))
