"""The trainable algorithms behind one interface: name, fit, fold-in parameters."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from reco_sidecar.engine.objective import IMPLICIT, Objective
from reco_sidecar.training import als, bpr

Params = als.AlsParams | bpr.BprParams
NAMES = ("als", "bpr")


def name(params: Params) -> str:
    return "als" if isinstance(params, als.AlsParams) else "bpr"


def fit(matrix: sp.csr_matrix, params: Params, *, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(params, als.AlsParams):
        return als.train(matrix, params, progress=progress)
    return bpr.train(matrix, params, progress=progress)


def fold_in(params: Params) -> dict[str, float]:
    """Parameters for solving an unknown user's vector from items at serving time.

    The solver is ALS's normal equations; for BPR factors it is only an approximation
    (plain ridge penalty, unit confidence), since BPR was not fitted to that loss.
    """
    if isinstance(params, als.AlsParams):
        return {"regularization": params.regularization, "alpha": params.alpha}
    return {"regularization": 0.1, "alpha": 1.0}


def objective(params: Params) -> Objective:
    """The loss serving-time solves use: ALS's own; for BPR, fold_in's ridge approximation."""
    f = fold_in(params)
    return Objective(IMPLICIT, alpha=f["alpha"], regularization=f["regularization"])
