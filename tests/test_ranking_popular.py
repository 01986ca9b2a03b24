"""The popular fallback under the impressions rule (ranking/popular.py), on the demo model:
for many random sets of sunk items, exclusions, offsets and page sizes, the page equals a
full sort of the adjusted popularity over every item the restriction keeps."""

from __future__ import annotations

import pathlib
import random

import numpy as np

from reco_sidecar.artifact.loader import open_model
from reco_sidecar.engine.model import Model
from reco_sidecar.engine.query import Restriction
from reco_sidecar.ranking import popular, rules
from reco_sidecar.ranking.compiled import compile_set
from reco_sidecar.ranking.stage import sunk_rows

FACTOR = 0.01
RULES = f'[[rules]]\nmodel = "demo"\n[rules.impressions]\nmax_shown = 2\nfactor = {FACTOR}\n'


def full_sort(model: Model, sunk: set[int], exclude: set[int], offset: int, n: int) -> list[int]:
    order = [int(r) for r in model.popular_rows if int(r) not in exclude]
    adjusted = [float(model.popularity[r]) * (FACTOR if r in sunk else 1.0) for r in order]
    ranked = sorted(range(len(order)), key=lambda i: (-adjusted[i], i))  # ties: the fallback's own order
    return [order[i] for i in ranked[offset : offset + n]]


def test_the_sunk_fallback_equals_a_full_sort_of_the_adjusted_popularity(demo_root: pathlib.Path) -> None:
    model = open_model(demo_root / "demo" / "1")
    (rule_set,) = rules.parse(RULES, "toml").rule_sets
    c = compile_set(model, rule_set)
    rng = random.Random(3)
    items = len(model.items.ids)
    top = [int(r) for r in model.popular_rows[:40]]
    for _ in range(300):
        shown_rows = np.array(rng.sample(top, rng.randrange(1, 12)), dtype=np.int64)
        counts = np.array([rng.randrange(0, 4) for _ in shown_rows], dtype=np.int64)
        sinking = sunk_rows(c, (shown_rows, counts))
        assert set(sinking.tolist()) == {int(r) for r, k in zip(shown_rows, counts, strict=True) if k >= 2}
        if not len(sinking):
            continue
        exclude = set(rng.sample(range(items), rng.randrange(0, 30)))
        offset, n = rng.randrange(0, 20), rng.randrange(1, 25)
        restriction = Restriction.none().excluding(np.array(sorted(exclude), dtype=np.int64))
        page = popular.page(model, c, sinking, offset, n, restriction)
        assert page.rows.tolist() == full_sort(model, set(sinking.tolist()), exclude, offset, n)
        assert np.all(np.diff(page.scores) <= 0)
