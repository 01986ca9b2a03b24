"""Deterministic assignment of users to experiment arms.

A user's place comes from sha256(salt, user id) alone: no state, no randomness, no worker or
replica identity, so every worker, restart and replica agrees, and experiments with different
salts are independent (the hashes of two salts are unrelated). The first 8 bytes decide
whether the user is in the experiment (below `share`), the next 8 which served arm (by weight),
so the arm split is the same whatever the share.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
from dataclasses import dataclass

from reco_sidecar.common.errors import InvalidArgument, echo
from reco_sidecar.experiments.config import Arm, Experiment, ExperimentSet

_SCALE = float(1 << 64)


@dataclass(frozen=True)
class Assignment:
    experiment: Experiment
    arm: Arm
    overridden: bool = False


def unit_pair(salt: str, user_id: str) -> tuple[float, float]:
    """Two independent uniform numbers in [0, 1) for (salt, user)."""
    digest = hashlib.sha256(salt.encode() + b"\x00" + user_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE, int.from_bytes(digest[8:16], "big") / _SCALE


def choose_arm(experiment: Experiment, position: float) -> Arm:
    arms = experiment.served_arms
    bounds = list(itertools.accumulate(a.weight for a in arms))
    index = bisect.bisect_right(bounds, position * bounds[-1])
    return arms[min(index, len(arms) - 1)]


def assign(experiment: Experiment, user_id: str) -> Arm | None:
    """The served arm of `user_id`, or None when the user is outside the experiment's share."""
    inside, position = unit_pair(experiment.salt, user_id)
    if inside >= experiment.share:
        return None
    return choose_arm(experiment, position)


def resolve(experiments: ExperimentSet, user_id: str, *, experiment: str = "", arm: str = "") -> Assignment | None:
    """The assignment for one request.

    With `experiment` empty: the first experiment (in file order) whose share holds the user.
    A named experiment pins it; a named arm overrides the hash (for QA), and must exist.
    """
    if arm and not experiment:
        raise InvalidArgument("an arm needs its experiment", field="arm")
    if experiment:
        exp = experiments.get(experiment)
        if exp is None:
            raise InvalidArgument(f"no active experiment named {echo(experiment)}", field="experiment")
        if arm:
            chosen = exp.arm(arm)
            if chosen is None or chosen.shadow:
                raise InvalidArgument(f"experiment {echo(experiment)} has no served arm {echo(arm)}", field="arm")
            return Assignment(exp, chosen, overridden=True)
        found = assign(exp, user_id)
        return Assignment(exp, found) if found is not None else None
    for exp in experiments.experiments:
        found = assign(exp, user_id)
        if found is not None:
            return Assignment(exp, found)
    return None
