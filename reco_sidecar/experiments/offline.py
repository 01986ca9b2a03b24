"""Offline comparison of an experiment's arms on held-out interactions.

Every arm ranks the same held-out users the way serving would (seen items left out, the
popular fallback for users a model does not know), and is scored per user, so arms can be
compared on the same users with a paired bootstrap: the confidence interval of a difference
comes from resampling users, not from two independent means.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from reco_sidecar.artifact import loader, version_dirs
from reco_sidecar.engine.model import Model
from reco_sidecar.engine.query import RecQuery, Restriction
from reco_sidecar.experiments.config import Arm, Experiment

# Users ranked per call to the model: one matrix product per block.
BLOCK = 512


@dataclass(frozen=True)
class HeldOut:
    """Held-out (user id → item ids) pairs, the users in a fixed order."""

    users: list[str]
    items: list[set[str]]


@dataclass(frozen=True)
class ArmResult:
    arm: Arm
    version: int | None
    ndcg: np.ndarray  # per user
    recall: np.ndarray  # per user
    coverage: float
    popularity_bias: float


def read_held_out(pairs: Sequence[tuple[str, str]]) -> HeldOut:
    by_user: dict[str, set[str]] = {}
    for user, item in pairs:
        by_user.setdefault(user, set()).add(item)
    users = sorted(by_user)
    return HeldOut(users, [by_user[u] for u in users])


def open_arm_model(model_root: pathlib.Path, arm: Arm, fallback: str) -> Model:
    name = arm.model or fallback
    version = arm.version or max(version_dirs.list_versions(model_root / name), default=0)
    if not version:
        raise FileNotFoundError(f"model {name!r} has no complete version under {model_root}")
    return loader.open_model(version_dirs.version_dir(model_root, name, version))


def rank_arm(arm: Arm, model: Model, users: list[str], k: int, seed: int) -> list[list[str]]:
    """Top-k item ids per user, as the arm would serve them."""
    out: list[list[str]] = [[] for _ in users]
    ids = model.items.ids
    rows = [model.users.row(u) for u in users]
    if arm.baseline == "random":
        rng = np.random.default_rng(seed)
        for j, row in enumerate(rows):
            seen = set(model.seen_rows(row).tolist()) if row is not None else set()
            picks = [int(i) for i in rng.permutation(len(ids))[: k + len(seen)] if int(i) not in seen][:k]
            out[j] = [ids[i] for i in picks]
        return out
    for start in range(0, len(users), BLOCK):
        block = range(start, min(start + BLOCK, len(users)))
        known = [j for j in block if rows[j] is not None and arm.baseline is None]
        if known:
            ranked = model.recommend([RecQuery(0, k, Restriction.none(), user_row=rows[j]) for j in known])
            for j, r in zip(known, ranked, strict=True):
                out[j] = [ids[int(i)] for i in r.rows]
        for j in block:
            if j in known:
                continue
            row = rows[j]
            exclude = model.seen_rows(row) if row is not None else np.zeros(0, dtype=np.int64)
            out[j] = [ids[int(i)] for i in model.popular(0, k, Restriction(exclude.astype(np.int64))).rows]
    return out


def score(arm: Arm, version: int | None, lists: list[list[str]], held: HeldOut, k: int,
          popularity_rank: dict[str, float], catalogue: int) -> ArmResult:
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ndcg = np.zeros(len(lists))
    recall = np.zeros(len(lists))
    shown: set[str] = set()
    pop: list[float] = []
    for j, (items, relevant) in enumerate(zip(lists, held.items, strict=True)):
        hits = np.array([i in relevant for i in items[:k]], dtype=np.float64)
        ideal = discounts[: min(len(relevant), k)].sum()
        ndcg[j] = float((hits * discounts[: len(hits)]).sum() / ideal) if ideal else 0.0
        recall[j] = float(hits.sum() / len(relevant)) if relevant else 0.0
        shown.update(items[:k])
        pop.extend(popularity_rank.get(i, 0.0) for i in items[:k])
    return ArmResult(arm, version, ndcg, recall, len(shown) / max(catalogue, 1),
                     float(np.mean(pop)) if pop else 0.0)


def bootstrap_difference(a: np.ndarray, b: np.ndarray, rounds: int, seed: int,
                         level: float = 0.95) -> tuple[float, float, float]:
    """Mean of (b − a) over users and its percentile interval from a paired bootstrap."""
    diff = b - a
    rng = np.random.default_rng(seed)
    means = np.array([diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(rounds)])
    tail = (1.0 - level) / 2
    return float(diff.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def compare(experiment: Experiment, model_root: pathlib.Path, held: HeldOut, *, default_model: str,
            k: int = 10, rounds: int = 1000, seed: int = 0,
            opener: Callable[[pathlib.Path, Arm, str], Model] = open_arm_model) -> dict[str, object]:
    """Every arm (shadow arms too) on the same users; differences against the first served arm."""
    reference = opener(model_root, Arm(name="reference", weight=1.0, model=default_model), default_model)
    order = np.argsort(-reference.popularity, kind="stable")
    # 1.0 for the most popular item, towards 0 for the long tail.
    popularity_rank = {reference.items.ids[int(i)]: 1.0 - pos / len(order) for pos, i in enumerate(order)}
    results = []
    for arm in experiment.arms:
        model = reference if arm.baseline else opener(model_root, arm, default_model)
        lists = rank_arm(arm, model, held.users, k, seed)
        results.append(score(arm, None if arm.baseline else model.version, lists, held, k,
                             popularity_rank, len(reference.items)))
    control = next(r for r in results if not r.arm.shadow)
    arms = []
    for r in results:
        entry: dict[str, object] = {
            "arm": r.arm.name, "shadow": r.arm.shadow,
            "source": r.arm.baseline or f"{r.arm.model}@{r.version}",
            f"ndcg@{k}": float(r.ndcg.mean()), f"recall@{k}": float(r.recall.mean()),
            "coverage": r.coverage, "popularity_bias": r.popularity_bias,
        }
        if r is not control:
            for metric, a, b in ((f"ndcg@{k}", control.ndcg, r.ndcg), (f"recall@{k}", control.recall, r.recall)):
                mean, low, high = bootstrap_difference(a, b, rounds, seed)
                entry[f"{metric}_vs_{control.arm.name}"] = {"difference": mean, "ci95": [low, high]}
        arms.append(entry)
    return {"experiment": experiment.name, "users": len(held.users), "k": k, "bootstrap_rounds": rounds,
            "control": control.arm.name, "arms": arms}


def plot(report: dict[str, object], path: pathlib.Path) -> None:
    """One panel per metric, arms side by side; error bars are the difference's CI around the control."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = report["k"]
    arms = report["arms"]
    assert isinstance(arms, list)
    metrics = [f"ndcg@{k}", f"recall@{k}", "coverage", "popularity_bias"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.5))
    names = [a["arm"] for a in arms]
    for ax, metric in zip(axes, metrics, strict=True):
        values = [a[metric] for a in arms]
        errors = [[0.0, 0.0]] * len(arms)
        for j, a in enumerate(arms):
            ci = a.get(f"{metric}_vs_{report['control']}")
            if isinstance(ci, dict):
                low, high = ci["ci95"]
                errors[j] = [max(0.0, ci["difference"] - low), max(0.0, high - ci["difference"])]
        ax.bar(names, values, yerr=np.array(errors).T, capsize=4,
               color=["#999" if a["shadow"] else "#3a6ea5" for a in arms])
        ax.set_title(metric)
    fig.suptitle(f"experiment {report['experiment']} ({report['users']} held-out users)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
