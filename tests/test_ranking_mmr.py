"""MMR's two forms (ranking/mmr.py): the compiled loop picks what the numpy loop picks, over
random candidate sets with caps, windows shorter than the list, small pools, pins and
exactness bounds; and CI fails, rather than skips, when the install did not build it."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from reco_sidecar.ranking import mmr, rules
from reco_sidecar.ranking.compiled import Compiled
from tests.support.requires import require


def compiled_rules(rng: random.Random, items: int, dims: int) -> Compiled:
    lam = rng.choice([0.05, 0.3, 0.5, 0.9])
    window = rng.choice([2, 3, 5, 10])
    cap = rng.choice([0, 1, 2, 3])
    text = (f'[[rules]]\nmodel = "m"\ncandidates = {rng.choice([1, 3, 8, 50])}\n'
            f'[rules.diversity]\nmmr_lambda = {lam}\nwindow = {window}\n')
    if cap:
        text += f'cap_field = "creator"\ncap = {cap}\n'
    (rule_set,) = rules.parse(text, "toml").rule_sets
    nprng = np.random.default_rng(rng.randrange(1 << 30))
    y = nprng.standard_normal((items, dims)).astype(np.float32)
    units = (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)
    values = rng.choice([1, 2, 4, 12])
    codes = nprng.integers(0, values, items).astype(np.int32)
    return Compiled(rule_set, {}, {}, np.zeros(0, np.int64), codes if cap else None, None, units,
                    values if cap else 0)


def test_the_compiled_loop_picks_what_the_numpy_loop_picks() -> None:
    require(mmr.KERNEL is not None, "the compiled MMR loop (a C compiler at install)")
    rng = random.Random(7)
    checked = partial = 0
    for _ in range(1500):
        items = rng.choice([30, 200, 1000])
        c = compiled_rules(rng, items, rng.choice([8, 32, 33, 64]))
        n = rng.randrange(0, min(items, 300))
        rows = np.asarray(rng.sample(range(items), n), dtype=np.int64)
        adjusted = np.sort(np.asarray([rng.gauss(0, 1) for _ in range(n)]))[::-1].copy()
        if rng.random() < 0.2 and n > 3:  # equal scores: ties go to the first
            adjusted[1:3] = adjusted[0]
        want = rng.randrange(1, 25)
        pins: dict[int, int] = {}
        for position in rng.sample(range(1, want + 1), rng.randrange(0, min(3, want) + 1)):
            row = rng.randrange(items)
            if row not in rows:
                pins[position] = row
        codes = c.cap_codes[rows] if c.cap_codes is not None else None
        bound = float(adjusted[rng.randrange(n)]) if n and rng.random() < 0.5 else -np.inf
        exhausted = rng.random() < 0.5
        a = mmr.pick(c, want, rows, adjusted, codes, pins, bound, exhausted)
        b = mmr.numpy_pick(c, want, rows, adjusted, codes, pins, bound, exhausted)
        assert a == b, (c.rules, want, pins, bound, exhausted)
        checked += 1
        partial += not a[2]
    assert checked == 1500 and 100 < partial < 1400  # both outcomes were exercised


def test_the_compiled_loop_refuses_bad_arrays_naming_them() -> None:
    require(mmr.KERNEL is not None, "the compiled MMR loop (a C compiler at install)")
    from reco_sidecar.ranking import _mmr
    units = np.ones((4, 2), np.float32)
    good: dict[str, Any] = dict(units=units, rows=np.arange(3, dtype=np.int64), adjusted=np.zeros(3), codes=None,
                                pin_rows=np.full(2, -1, np.int64), pin_codes=np.full(2, -1, np.int32), cap_values=0,
                                lam=0.3, pool_size=2, want=2, window=10, cap=0, bound=-1.0, exhausted=True)

    def pick(**change: Any) -> Any:
        return _mmr.pick(**{**good, **change})

    assert pick()[0] == [0, 1]
    with pytest.raises(TypeError, match="units"):
        pick(units=units.astype(np.float64))
    with pytest.raises(IndexError, match="candidate row"):
        pick(rows=np.asarray([0, 1, 9], np.int64))
    with pytest.raises(ValueError, match="as long"):
        pick(adjusted=np.zeros(2))

