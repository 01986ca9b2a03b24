"""Warm-up after a load and before serving: the first requests must not pay for page faults
or a cold ANN index (TF Serving's slow-first-request complaint). Belongs to the manager,
which decides when a version starts serving; the loader only validates and maps."""

from __future__ import annotations

import numpy as np

from reco_sidecar.engine.model import Model
from reco_sidecar.engine.query import RecQuery, Restriction


def warm(model: Model) -> None:
    """Touches pages and runs real queries on the version about to serve."""
    n_users, n_items = model.user_factors.shape[0], model.item_factors.shape[0]
    rng = np.random.default_rng(0)
    if n_users:
        rows = rng.choice(n_users, size=min(8, n_users), replace=False)
        model.recommend([RecQuery(0, 10, Restriction.none(), user_row=int(r)) for r in rows])
    for r in rng.choice(n_items, size=min(32, n_items), replace=False):
        model.similar(int(r), 0, min(10, max(1, n_items - 1)), Restriction.none())
