"""The popular fallback under the impressions rule: a user the model does not know and who
has no online vector (a new user whose only events are impressions) is answered with the
most popular items, and an item shown to them `max_shown` times without an engagement sinks
there as it does in a ranked page (docs/ranking.md, Impressions).

Popularity times the rule's factor for each sunk item, ordered by that, ties in the
fallback's own order. Exact over the whole catalogue: a factor below 1 only lowers, so the
first `offset + n` plus (sunk items) popular items the restriction keeps hold every item of
the page.
"""

from __future__ import annotations

import numpy as np

from reco_sidecar.engine.model import Model
from reco_sidecar.engine.query import Provenance, Ranked, Restriction
from reco_sidecar.ranking.compiled import Compiled
from reco_sidecar.ranking.stage import adjust


def page(model: Model, c: Compiled, sinking: np.ndarray, offset: int, n: int, restriction: Restriction) -> Ranked:
    """The fallback page with `sinking` (stage.sunk_rows, non-empty) sunk; its scores are
    the adjusted ones."""
    assert c.rules.impressions is not None
    want = offset + n
    first = model.popular(0, want + len(sinking), restriction)
    factor = np.where(np.isin(first.rows, sinking), c.rules.impressions.factor, 1.0)
    adjusted = adjust(model.popularity[first.rows].astype(np.float64), factor)
    order = np.argsort(-adjusted, kind="stable")[offset:want]
    return Ranked(first.rows[order], adjusted[order].astype(np.float32), Provenance.POPULAR)
