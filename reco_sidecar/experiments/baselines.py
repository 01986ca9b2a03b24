"""The built-in arms: `popular` (the model's popularity order) and `random` (a uniform draw,
seeded by the experiment's salt and the user so every worker and replica answers alike).
Both leave out what the user has seen unless the request keeps it."""

from __future__ import annotations

import hashlib

import numpy as np

from reco_sidecar.engine.model import Model
from reco_sidecar.engine.query import Provenance, Ranked, Restriction


def _unseen(model: Model, user_id: str, restriction: Restriction, include_seen: bool) -> Restriction:
    row = model.users.row(user_id)
    if row is None or include_seen:
        return restriction
    return restriction.excluding(model.seen_rows(row).astype(np.int64))


def popular(model: Model, user_id: str, offset: int, n: int, restriction: Restriction, include_seen: bool) -> Ranked:
    return model.popular(offset, n, _unseen(model, user_id, restriction, include_seen))


def random(model: Model, user_id: str, salt: str, offset: int, n: int, restriction: Restriction,
           include_seen: bool) -> Ranked:
    seed = int.from_bytes(hashlib.sha256(f"{salt}\x00random\x00{user_id}".encode()).digest()[:8], "big")
    order = np.random.default_rng(seed).permutation(len(model.items)).astype(np.int64)
    keep = _unseen(model, user_id, restriction, include_seen).keeps(order)
    rows = order[keep][offset : offset + n]
    return Ranked(rows, np.zeros(len(rows), dtype=np.float32), Provenance.RANDOM)
