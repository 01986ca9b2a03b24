"""rank_for_arm, the one way an arm ranks a group of users (serving/retrieval.py), on a real
model version: a model arm (or no arm) answers as the model's own product does, one product
for the group; a baseline arm answers its own way for every user, known or not; users the
model does not know get the popular page only when the caller asks for the fallback."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from reco_sidecar.artifact import loader
from reco_sidecar.engine.model import Model
from reco_sidecar.engine.query import Provenance, RecQuery, Restriction
from reco_sidecar.experiments import baselines
from reco_sidecar.experiments.config import Arm, Experiment
from reco_sidecar.serving.retrieval import Ask, rank_for_arm

N = 5
EXPERIMENT = Experiment("e", "salt-1", 1.0, (Arm("model", 1.0, model="demo"), Arm("random", 1.0, baseline="random"),
                                              Arm("popular", 1.0, baseline="popular")))


@pytest.fixture(scope="module")
def model(demo_version_dir: pathlib.Path) -> Model:
    return loader.open_model(demo_version_dir)


def _asks(model: Model, users: list[str]) -> list[Ask]:
    out = []
    for user in users:
        row = model.users.row(user)
        query = None if row is None else RecQuery(0, N, Restriction.none(), user_row=row)
        out.append(Ask(user, 0, N, Restriction.none(), False, query))
    return out


def _same(a: object, b: object) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and a.source == b.source  # type: ignore[attr-defined]
                                         and np.array_equal(a.rows, b.rows))  # type: ignore[attr-defined]


@pytest.mark.parametrize("arm", [None, EXPERIMENT.arms[0]], ids=["no-arm", "model-arm"])
def test_a_model_arm_ranks_as_the_model_and_leaves_unknown_users_to_the_caller(model: Model, arm: Arm | None
                                                                              ) -> None:
    users = [*model.users.ids[:6], "nobody-1", "nobody-2"]
    asks = _asks(model, list(users))
    ranked = rank_for_arm(model, arm, EXPERIMENT, asks, fallback=False)
    alone = [model.recommend([a.query])[0] if a.query is not None else None for a in asks]
    assert all(_same(r, one) for r, one in zip(ranked, alone, strict=True))
    assert ranked[-2:] == [None, None]
    with_fallback = rank_for_arm(model, arm, EXPERIMENT, asks, fallback=True)
    assert all(r is not None and r.source is Provenance.POPULAR for r in with_fallback[-2:])
    assert all(_same(a, b) for a, b in zip(ranked[:-2], with_fallback[:-2], strict=True))


@pytest.mark.parametrize("which", [1, 2], ids=["random", "popular"])
def test_a_baseline_arm_ranks_every_user_its_own_way(model: Model, which: int) -> None:
    arm = EXPERIMENT.arms[which]
    users = [*model.users.ids[:4], "nobody"]
    ranked = rank_for_arm(model, arm, EXPERIMENT, _asks(model, list(users)), fallback=False)
    for user, r in zip(users, ranked, strict=True):
        expected = (baselines.random(model, user, EXPERIMENT.salt, 0, N, Restriction.none(), False) if which == 1
                    else baselines.popular(model, user, 0, N, Restriction.none(), False))
        assert _same(r, expected)
