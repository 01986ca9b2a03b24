"""Retrieval: the ranked candidates of a group of users, as an experiment arm ranks them (no
arm: as the model does). `rank_for_arm` is the one way an arm ranks, for Recommend's
baseline arms, BatchRecommend's chunks and the shadow comparisons alike; what it returns is
what a re-ranking stage would take and what render.py turns into the page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reco_sidecar.engine.model import Model
from reco_sidecar.engine.query import Ranked, RecQuery, Restriction
from reco_sidecar.experiments import baselines
from reco_sidecar.experiments.config import Arm, Experiment


@dataclass(frozen=True, slots=True)
class Ask:
    """One user for an arm to rank. `query` is what the model scores for them: None when the
    model does not know them (a baseline arm ranks them all the same)."""

    user_id: str
    offset: int
    n: int
    restriction: Restriction
    include_seen: bool
    query: RecQuery | None


def rank_for_arm(model: Model, arm: Arm | None, experiment: Experiment | None, asks: Sequence[Ask], *,
                 fallback: bool) -> list[Ranked | None]:
    """Each ask ranked as `arm` ranks it on `model` (no arm: as the model does). A baseline
    arm ranks every ask its own way; otherwise one matrix product answers every ask with a
    query, and the others get the popular page when `fallback`, else None (the caller
    answers them: a shared page, or an error)."""
    if arm is not None and arm.baseline is not None and experiment is not None:
        if arm.baseline == "random":
            return [baselines.random(model, a.user_id, experiment.salt, a.offset, a.n, a.restriction,
                                     a.include_seen) for a in asks]
        return [baselines.popular(model, a.user_id, a.offset, a.n, a.restriction, a.include_seen) for a in asks]
    out: list[Ranked | None] = [None] * len(asks)
    known = [k for k, a in enumerate(asks) if a.query is not None]
    if known:
        queries = [q for q in (asks[k].query for k in known) if q is not None]
        for k, ranked in zip(known, model.recommend(queries), strict=True):
            out[k] = ranked
    if fallback:
        for k, a in enumerate(asks):
            if a.query is None:
                out[k] = model.popular(a.offset, a.n, a.restriction)
    return out
