"""A deterministic synthetic data set with the structure of real interaction logs:
power-law item popularity, users in taste clusters, and items in categories."""

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


def generate(spec: DemoSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(user rows, item rows, weights, timestamps, item clusters)."""
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
    timestamps = 1_700_000_000 + rng.integers(0, 90 * 86_400, spec.interactions)
    return users, items, weights, timestamps, item_cluster


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
