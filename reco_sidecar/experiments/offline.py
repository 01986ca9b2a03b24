"""Offline comparison of an experiment's arms on held-out interactions.

Every arm ranks the same held-out users the way serving would (seen items left out, the
popular fallback for users a model does not know), and is scored per user, so arms can be
compared on the same users with a paired bootstrap: the confidence interval of a difference
comes from resampling users, not from two independent means.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from reco_sidecar.artifact import loader, version_dirs
from reco_sidecar.engine.model import Model
from reco_sidecar.engine.query import Ranked, RecQuery, Restriction
from reco_sidecar.experiments.config import Arm, Experiment
from reco_sidecar.ranking import stage
from reco_sidecar.ranking.compiled import CompiledRules
from reco_sidecar.ranking.rules import RulesFile

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
    # Per user, of the first k items: mean pairwise cosine distance of item factors, the share
    # held by the most frequent value of the creator field, mean self-information of popularity.
    diversity: np.ndarray
    creator_share: np.ndarray
    novelty: np.ndarray


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


def rank_arm(arm: Arm, model: Model, users: list[str], k: int, seed: int, rules: RulesFile | None = None,
             experiment: str = "") -> list[list[str]]:
    """Top-k item ids per user, as the arm would serve them (with its ranking rules, if given)."""
    out: list[list[str]] = [[] for _ in users]
    ids = model.items.ids
    rows = [model.users.row(u) for u in users]
    for_model = CompiledRules().get(model, rules, 1) if rules is not None else None
    hidden = Restriction.none() if for_model is None else Restriction.none().excluding(for_model.hidden)
    compiled = for_model.find(experiment, arm.name) if for_model is not None else None
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
        if known and compiled is not None:
            for j in known:
                q = RecQuery(0, k, hidden, user_row=rows[j])

                def deeper(n: int, q: RecQuery = q) -> Ranked:
                    return model.recommend([stage.retrieval_query(q, n)])[0]

                page = stage.rerank(model, compiled, q, deeper(stage.depth(compiled, q)), deeper, time.time())
                out[j] = [ids[int(i)] for i in page.rows]
        elif known:
            ranked = model.recommend([RecQuery(0, k, hidden, user_row=rows[j]) for j in known])
            for j, r in zip(known, ranked, strict=True):
                out[j] = [ids[int(i)] for i in r.rows]
        for j in block:
            if j in known:
                continue
            row = rows[j]
            exclude = model.seen_rows(row) if row is not None else np.zeros(0, dtype=np.int64)
            out[j] = [ids[int(i)] for i in model.popular(0, k, hidden.excluding(exclude.astype(np.int64))).rows]
    return out


@dataclass(frozen=True)
class Catalogue:
    """What the beyond-accuracy measures read, from the reference model."""

    unit: dict[str, np.ndarray]  # item id -> unit factor vector
    creator: dict[str, str]  # item id -> creator (or the chosen field's value)
    self_information: dict[str, float]  # item id -> -log2(share of interactions)

    @staticmethod
    def of(model: Model, creator_field: str) -> Catalogue:
        ids = model.items.ids
        y = np.asarray(model.item_factors, dtype=np.float64)
        unit = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
        values = model.catalog.fields.get(creator_field) if model.catalog is not None else None
        pop = np.asarray(model.popularity, dtype=np.float64) + 1.0  # +1: an unseen item is rare, not infinite
        info = -np.log2(pop / pop.sum())
        return Catalogue({ids[r]: unit[r] for r in range(len(ids))},
                         {ids[r]: values[r] for r in range(len(ids))} if values is not None else {},
                         {ids[r]: float(info[r]) for r in range(len(ids))})

    def diversity(self, items: list[str]) -> float:
        vectors = [self.unit[i] for i in items if i in self.unit]
        if len(vectors) < 2:
            return 0.0
        u = np.stack(vectors)
        sim = u @ u.T
        n = len(vectors)
        return float(1.0 - (sim.sum() - np.trace(sim)) / (n * (n - 1)))

    def creator_share(self, items: list[str]) -> float:
        if not items or not self.creator:
            return 0.0
        counts: dict[str, int] = {}
        for i in items:
            c = self.creator.get(i, "")
            counts[c] = counts.get(c, 0) + 1
        return max(counts.values()) / len(items)

    def novelty(self, items: list[str]) -> float:
        values = [self.self_information[i] for i in items if i in self.self_information]
        return float(np.mean(values)) if values else 0.0


def score(arm: Arm, version: int | None, lists: list[list[str]], held: HeldOut, k: int,
          popularity_rank: dict[str, float], catalogue: int, about: Catalogue | None = None) -> ArmResult:
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ndcg = np.zeros(len(lists))
    recall = np.zeros(len(lists))
    diversity = np.zeros(len(lists))
    creator_share = np.zeros(len(lists))
    novelty = np.zeros(len(lists))
    shown: set[str] = set()
    pop: list[float] = []
    for j, (items, relevant) in enumerate(zip(lists, held.items, strict=True)):
        if about is not None:
            diversity[j] = about.diversity(items[:k])
            creator_share[j] = about.creator_share(items[:k])
            novelty[j] = about.novelty(items[:k])
        hits = np.array([i in relevant for i in items[:k]], dtype=np.float64)
        ideal = discounts[: min(len(relevant), k)].sum()
        ndcg[j] = float((hits * discounts[: len(hits)]).sum() / ideal) if ideal else 0.0
        recall[j] = float(hits.sum() / len(relevant)) if relevant else 0.0
        shown.update(items[:k])
        pop.extend(popularity_rank.get(i, 0.0) for i in items[:k])
    return ArmResult(arm, version, ndcg, recall, len(shown) / max(catalogue, 1),
                     float(np.mean(pop)) if pop else 0.0, diversity, creator_share, novelty)


def bootstrap_mean(values: np.ndarray, rounds: int, seed: int, level: float = 0.95) -> tuple[float, float, float]:
    """Mean over users and its percentile interval from resampling users."""
    rng = np.random.default_rng(seed)
    means = np.array([values[rng.integers(0, len(values), len(values))].mean() for _ in range(rounds)])
    tail = (1.0 - level) / 2
    return float(values.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


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
            opener: Callable[[pathlib.Path, Arm, str], Model] = open_arm_model,
            rules: RulesFile | None = None, creator_field: str = "creator") -> dict[str, object]:
    """Every arm (shadow arms too) on the same users; differences against the first served arm."""
    reference = opener(model_root, Arm(name="reference", weight=1.0, model=default_model), default_model)
    order = np.argsort(-reference.popularity, kind="stable")
    # 1.0 for the most popular item, towards 0 for the long tail.
    popularity_rank = {reference.items.ids[int(i)]: 1.0 - pos / len(order) for pos, i in enumerate(order)}
    about = Catalogue.of(reference, creator_field)
    results = []
    for arm in experiment.arms:
        model = reference if arm.baseline else opener(model_root, arm, default_model)
        lists = rank_arm(arm, model, held.users, k, seed, rules, experiment.name)
        results.append(score(arm, None if arm.baseline else model.version, lists, held, k,
                             popularity_rank, len(reference.items), about))
    control = next(r for r in results if not r.arm.shadow)
    arms = []
    for r in results:
        entry: dict[str, object] = {
            "arm": r.arm.name, "shadow": r.arm.shadow,
            "source": r.arm.baseline or f"{r.arm.model}@{r.version}",
            f"ndcg@{k}": float(r.ndcg.mean()), f"recall@{k}": float(r.recall.mean()),
            "coverage": r.coverage, "popularity_bias": r.popularity_bias,
            "intra_list_diversity": float(r.diversity.mean()), "largest_creator_share": float(r.creator_share.mean()),
            "novelty": float(r.novelty.mean()),
        }
        per_user = ((f"ndcg@{k}", control.ndcg, r.ndcg), (f"recall@{k}", control.recall, r.recall),
                    ("intra_list_diversity", control.diversity, r.diversity),
                    ("largest_creator_share", control.creator_share, r.creator_share),
                    ("novelty", control.novelty, r.novelty))
        for metric, _, b in per_user:
            _, low, high = bootstrap_mean(b, rounds, seed)
            entry[f"{metric}_ci95"] = [low, high]
        if r is not control:
            for metric, a, b in per_user:
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
