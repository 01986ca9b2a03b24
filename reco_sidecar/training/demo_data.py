"""A deterministic synthetic data set with the structure of real interaction logs:
power-law item popularity, users in taste clusters, items in categories, and time.

Every interaction has a timestamp, uniform over DAYS days from START. With `drift` > 0 that
share of users changes taste once: each such user gets a second cluster (never the first)
and a switch time, uniform over the same days; their in-cluster interactions from the switch
on come from the second cluster. Online learning can only show a benefit on data like this:
on static tastes a model trained yesterday already knows what a user will do today.

Drift is drawn from its own random stream and only re-draws the items of drifting users'
post-switch interactions, so `drift=0` (the default) gives exactly the data it always gave.
"""

from __future__ import annotations

import csv
import pathlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DemoSpec:
    users: int = 2_000
    items: int = 1_000
    interactions: int = 60_000
    clusters: int = 8
    # Share of a user's interactions inside the user's taste cluster.
    affinity: float = 0.8
    seed: int = 42
    # Share of users whose taste cluster changes once, at a random time.
    drift: float = 0.0


START = 1_700_000_000
DAYS = 90


@dataclass(frozen=True)
class Drift:
    """Who changed taste, to which cluster, and when (Unix seconds); for the replay's report."""

    users: np.ndarray  # user rows
    from_cluster: np.ndarray
    to_cluster: np.ndarray
    at: np.ndarray


def generate(spec: DemoSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(user rows, item rows, weights, timestamps, item clusters)."""
    users, items, weights, timestamps, item_cluster, _ = generate_with_drift(spec)
    return users, items, weights, timestamps, item_cluster


def generate_with_drift(spec: DemoSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, Drift]:
    """`generate`'s arrays and the drift that shaped them."""
    if not 0.0 <= spec.drift <= 1.0:
        raise ValueError(f"drift must be a share between 0 and 1, got {spec.drift}")
    rng = np.random.default_rng(spec.seed)
    item_cluster = rng.integers(0, spec.clusters, spec.items)
    user_cluster = rng.integers(0, spec.clusters, spec.users)
    # Zipf-like popularity over a random permutation of items.
    pop = 1.0 / np.power(np.arange(1, spec.items + 1), 0.9)
    pop = pop[rng.permutation(spec.items)]
    # Users' activity is heavy-tailed too.
    activity = rng.lognormal(0.0, 1.0, spec.users)
    users = rng.choice(spec.users, size=spec.interactions, p=activity / activity.sum())
    in_cluster = rng.random(spec.interactions) < spec.affinity
    items = np.empty(spec.interactions, dtype=np.int64)
    global_cdf = np.cumsum(pop) / pop.sum()
    items[~in_cluster] = np.searchsorted(global_cdf, rng.random(int((~in_cluster).sum())))
    for c in range(spec.clusters):
        members = np.flatnonzero(item_cluster == c)
        sel = in_cluster & (user_cluster[users] == c)
        if not len(members) or not sel.any():
            items[sel] = np.searchsorted(global_cdf, rng.random(int(sel.sum())))
            continue
        cdf = np.cumsum(pop[members]) / pop[members].sum()
        items[sel] = members[np.searchsorted(cdf, rng.random(int(sel.sum())))]
    items = np.minimum(items, spec.items - 1)
    weights = rng.choice(np.array([0.1, 0.3, 0.7, 1.0]), size=spec.interactions, p=[0.55, 0.25, 0.15, 0.05])
    timestamps = START + rng.integers(0, DAYS * 86_400, spec.interactions)
    drift = _drift(spec, users, items, timestamps, in_cluster, user_cluster, item_cluster, global_cdf, pop)
    return users, items, weights, timestamps, item_cluster, drift


def _drift(spec: DemoSpec, users: np.ndarray, items: np.ndarray, timestamps: np.ndarray, in_cluster: np.ndarray,
           user_cluster: np.ndarray, item_cluster: np.ndarray, global_cdf: np.ndarray, pop: np.ndarray) -> Drift:
    """Re-draws drifting users' in-cluster items after their switch (in place)."""
    rng = np.random.default_rng([spec.seed, 1])
    drifting = np.flatnonzero(rng.random(spec.users) < spec.drift) if spec.drift > 0 else np.zeros(0, np.int64)
    if spec.clusters < 2:
        drifting = drifting[:0]
    # a second cluster, never the first: shift by 1 .. clusters-1
    to = (user_cluster[drifting] + rng.integers(1, max(2, spec.clusters), len(drifting))) % max(1, spec.clusters)
    at = START + rng.integers(0, DAYS * 86_400, len(drifting))
    switch = np.full(spec.users, np.iinfo(np.int64).max, dtype=np.int64)
    target = user_cluster.copy()
    switch[drifting], target[drifting] = at, to
    moved = in_cluster & (timestamps >= switch[users])
    for c in range(spec.clusters):
        sel = moved & (target[users] == c)
        members = np.flatnonzero(item_cluster == c)
        if not sel.any():
            continue
        if not len(members):
            items[sel] = np.minimum(np.searchsorted(global_cdf, rng.random(int(sel.sum()))), spec.items - 1)
            continue
        cdf = np.cumsum(pop[members]) / pop[members].sum()
        items[sel] = members[np.minimum(np.searchsorted(cdf, rng.random(int(sel.sum()))), len(members) - 1)]
    return Drift(drifting.astype(np.int64), user_cluster[drifting].astype(np.int64), to.astype(np.int64),
                 at.astype(np.int64))


# Items are created over the year before the first interaction (1_700_000_000).
CREATED_FROM = 1_700_000_000 - 365 * 86_400


def user_id(row: int) -> str:
    return f"u{row:07d}"


def item_id(row: int) -> str:
    return f"i{row:07d}"


def write(spec: DemoSpec, out: pathlib.Path,
          items_out: pathlib.Path | None = None) -> tuple[pathlib.Path, pathlib.Path]:
    """Writes interactions CSV and an item metadata CSV (category = taste cluster, tags, a
    creator among four per cluster, and a creation time over the year before the data's start)."""
    users, items, weights, ts, item_cluster = generate(spec)
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        f.write("user_id,item_id,weight,timestamp\n")
        for chunk in range(0, len(users), 200_000):
            s = slice(chunk, chunk + 200_000)
            f.writelines(
                f"u{u:07d},i{i:07d},{w:g},{t}\n"
                for u, i, w, t in zip(users[s].tolist(), items[s].tolist(), weights[s].tolist(),
                                      ts[s].tolist(), strict=True)
            )
    items_out = items_out or out.with_name(out.stem + "_items.csv")
    # Its own generator: the interactions above stay what they were before items had creators.
    created = CREATED_FROM + np.random.default_rng(spec.seed + 1).integers(0, 365 * 86_400, spec.items)
    with items_out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["item_id", "category", "tags", "creator", "created_at"])
        for row, c in enumerate(item_cluster.tolist()):
            w.writerow([item_id(row), f"cat{c}", "even" if row % 2 == 0 else "odd", f"creator{c}-{row % 4}",
                        int(created[row])])
    return out, items_out
