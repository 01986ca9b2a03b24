"""Implicit-feedback ALS via the implicit library."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits


@dataclass(frozen=True)
class AlsParams:
    factors: int = 64
    iterations: int = 15
    regularization: float = 0.05
    alpha: float = 20.0
    seed: int = 7

    def as_dict(self) -> dict[str, float | int]:
        return {"factors": self.factors, "iterations": self.iterations,
                "regularization": self.regularization, "alpha": self.alpha, "seed": self.seed}


def train(matrix: sp.csr_matrix, params: AlsParams, *,
          progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(user_factors, item_factors), float32."""
    from implicit.cpu.als import AlternatingLeastSquares

    # implicit's own threads do the work; BLAS threads on top of them only contend.
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=params.factors,
            regularization=params.regularization,
            alpha=params.alpha,
            iterations=params.iterations,
            random_state=params.seed,
        )
        model.fit(matrix.astype(np.float32), show_progress=progress)
    return (np.ascontiguousarray(model.user_factors, dtype=np.float32),
            np.ascontiguousarray(model.item_factors, dtype=np.float32))
