"""Replay evaluation of learning between retrains: does a user's next interaction rank higher
when the model learns from the interactions before it?

1. Train on the interactions dated at or before T (the version's `as_of` is T).
2. Replay the later interactions in time order (ties by their order in the file). Each one is
   turned into a feedback event of the version's types and goes through the online domain
   code (`reco_sidecar.online`: validation, the user's history, the exact re-solve).
3. Before an interaction is applied it is scored, when it is the user's first with that item
   (an item already seen is excluded from every list, so it could never be a hit): where does
   the item rank in the user's top k
   - `frozen`: the version as trained (its stored vector, its seen items; popular items for a
     user it does not know). What the sidecar serves without online updates;
   - `online`: the user's vector re-solved from the trained row plus every earlier replayed
     event, and the seen set grown by them;
   - `seen_only`: the stored vector with the grown seen set, which separates what the
     learning gains from what excluding consumed items gains.
   With `--through sidecar` the `online` arm is what a real sidecar answers instead
   (replay_sidecar.py): every event goes through the Feedback RPC in time order, and the
   rank is the item's place in the user's Recommend answer. The solve is the same code, so
   the two ways give the same ranks (tests/test_replay_evaluate.py compares them).
4. recall@k (1 if the item is in the top k) and NDCG@k (1/log2(rank + 2)) are averaged over
   the scored interactions; the lift of `online` over `frozen` gets a percentile interval from a
   bootstrap that resamples users (a user's interactions are not independent of each other).
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import pathlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from reco_sidecar.artifact import loader
from reco_sidecar.common.errors import InvalidArgument
from reco_sidecar.engine.eventtypes import EventType, from_weights
from reco_sidecar.engine.model import Model
from reco_sidecar.engine.query import RecQuery, Restriction
from reco_sidecar.online.events import Event, validate
from reco_sidecar.online.history import UserHistory
from reco_sidecar.online.solve import recalculate
from reco_sidecar.training import algorithms, als, pipeline, weights
from reco_sidecar.training.interactions import Builder

ARMS = ("frozen", "online", "seen_only")


@dataclass(frozen=True)
class Row:
    user_id: str
    item_id: str
    weight: float
    time: float


def read_rows(path: pathlib.Path) -> list[Row]:
    """CSV user_id,item_id,weight,timestamp (Unix seconds); every row must be dated."""
    out: list[Row] = []
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or header[:2] != ["user_id", "item_id"] or "timestamp" not in header:
            raise InvalidArgument(f"{path}: header must be user_id,item_id[,weight],timestamp (got {header})",
                                  field="replay")
        at_w = header.index("weight") if "weight" in header else None
        at_t = header.index("timestamp")
        for lineno, r in enumerate(reader, start=2):
            if not r:
                continue
            try:
                weight = float(r[at_w]) if at_w is not None and r[at_w] != "" else 1.0
                time = float(r[at_t])
            except (ValueError, IndexError):
                raise InvalidArgument(f"{path}:{lineno}: weight or timestamp is not a number",
                                      field="replay") from None
            if not (math.isfinite(weight) and math.isfinite(time)) or weight == 0:
                raise InvalidArgument(f"{path}:{lineno}: weight must be non-zero and finite, timestamp finite",
                                      field="replay")
            out.append(Row(r[0], r[1], weight, time))
    if not out:
        raise InvalidArgument(f"{path} holds no interactions", field="replay")
    return out


def split_time(rows: Sequence[Row], share: float) -> float:
    """The time before which `share` of the interactions happened."""
    return float(np.quantile(np.fromiter((r.time for r in rows), dtype=np.float64, count=len(rows)), share))


def as_event(n: int, row: Row, types: Mapping[str, EventType]) -> Event:
    """The feedback event a client would send for this row: the type whose weight the row's
    weight is, else the largest type of the row's sign with the ratio as the event's weight."""
    for name, t in types.items():
        if t.weight == row.weight:
            return Event(f"replay-{n}", row.user_id, row.item_id, name, None, row.time)
    # (a shown type, weight 0, is an impression: never the type of an interaction row)
    same_sign = [(abs(t.weight), name) for name, t in types.items()
                 if t.weight != 0 and (t.weight > 0) == (row.weight > 0)]
    if not same_sign:
        raise InvalidArgument(f"no event type of the sign of weight {row.weight}", field="weights")
    size, name = max(same_sign)
    return Event(f"replay-{n}", row.user_id, row.item_id, name, abs(row.weight) / size, row.time)


@dataclass(frozen=True)
class Scored:
    index: int  # position in the replay
    user: str
    time: float
    ranks: dict[str, int]  # arm -> 0-based rank in the top k, or -1


def _rank(model: Model, item_row: int, k: int, *, user_row: int | None, vector: np.ndarray | None,
          extra_seen: np.ndarray | None) -> int:
    if user_row is None and vector is None:
        ranked = model.popular(0, k, Restriction.none().excluding(extra_seen))
    else:
        query = RecQuery(0, k, Restriction.none(), user_row=user_row, vector=vector, seen_rows=extra_seen)
        ranked = model.recommend([query])[0]
    hits = np.flatnonzero(ranked.rows == item_row)
    return int(hits[0]) if len(hits) else -1


class Served(Protocol):
    """The `online` arm from outside: a sidecar learning from the replayed events."""

    def learn(self, events: Sequence[Event]) -> None:
        """Applies the events in order; returns once they are visible."""
        ...

    def rank(self, user_id: str, item_id: str, k: int) -> int:
        """The item's 0-based rank in the user's top `k` as served, or -1."""
        ...


def replay(model: Model, rows: Sequence[Row], k: int, served: Served | None = None
           ) -> tuple[list[Scored], dict[str, int]]:
    """Scores each later interaction as it arrives (see the module doc), then applies it.
    With `served`, the `online` arm is its answer, after every earlier event went to it."""
    types = model.info.event_types
    unsent: list[Event] = []
    histories: dict[str, UserHistory] = {}
    consumed: dict[str, set[int]] = {}
    scored: list[Scored] = []
    counts = {"replayed": 0, "scored": 0, "unknown_item": 0, "already_seen": 0, "new_users": 0}
    for n, row in enumerate(rows):
        event = validate([as_event(n, row, types)], types)[0].event
        counts["replayed"] += 1
        item_row = model.items.row(row.item_id)
        user_row = model.users.row(row.user_id)
        history = histories.get(row.user_id, UserHistory(row.user_id))
        mine = consumed.setdefault(row.user_id, set())
        trained_seen = set() if user_row is None else set(model.seen_rows(user_row).tolist())
        if item_row is None:
            counts["unknown_item"] += 1
        elif item_row in trained_seen or item_row in mine:
            counts["already_seen"] += 1
        else:
            grown = np.array(sorted(mine), dtype=np.int64)
            ranks = {
                "frozen": _rank(model, item_row, k, user_row=user_row, vector=None, extra_seen=None),
                "seen_only": _rank(model, item_row, k, user_row=user_row, vector=None, extra_seen=grown),
            }
            if served is None:
                online = recalculate(model, history) if history.events else None
                excluded = grown if online is None else np.union1d(grown, online.excluded)
                ranks["online"] = _rank(model, item_row, k, user_row=user_row,
                                        vector=None if online is None else online.vector, extra_seen=excluded)
            else:
                served.learn(unsent)  # every earlier event, in time order, before the question
                unsent = []
                ranks["online"] = served.rank(row.user_id, row.item_id, k)
            scored.append(Scored(n, row.user_id, row.time, ranks))
            counts["scored"] += 1
        if user_row is None and not history.events:
            counts["new_users"] += 1
        histories[row.user_id] = history.add([event])
        unsent.append(event)
        if item_row is not None and row.weight > 0:
            mine.add(item_row)
    return scored, counts


def _metrics(ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hit = (ranks >= 0).astype(np.float64)
    ndcg = np.where(ranks >= 0, 1.0 / np.log2(np.maximum(ranks, 0) + 2.0), 0.0)
    return hit, ndcg


def user_bootstrap(users: np.ndarray, base: np.ndarray, new: np.ndarray, rounds: int, seed: int,
                   level: float = 0.95) -> dict[str, Any]:
    """Lift of mean(new) over mean(base) (absolute and relative) with percentile intervals from
    resampling users with replacement (each drawn user brings all their scored interactions)."""
    uniq, inverse = np.unique(users, return_inverse=True)
    sums_b = np.bincount(inverse, weights=base, minlength=len(uniq))
    sums_n = np.bincount(inverse, weights=new, minlength=len(uniq))
    counts = np.bincount(inverse, minlength=len(uniq)).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(uniq), (rounds, len(uniq)))
    weight = np.stack([np.bincount(d, minlength=len(uniq)) for d in draws]).astype(np.float64)
    total = weight @ counts
    mb, mn = (weight @ sums_b) / total, (weight @ sums_n) / total
    tail = (1.0 - level) / 2
    absolute = mn - mb
    relative = np.where(mb > 0, mn / np.where(mb > 0, mb, 1.0) - 1.0, np.nan)
    b, m = float(base.mean()), float(new.mean())
    return {
        "frozen": b, "online": m, "absolute": m - b,
        "absolute_ci95": [float(np.quantile(absolute, tail)), float(np.quantile(absolute, 1 - tail))],
        "relative": (m / b - 1.0) if b > 0 else None,
        "relative_ci95": [float(np.nanquantile(relative, tail)), float(np.nanquantile(relative, 1 - tail))],
    }


@dataclass(frozen=True)
class ReplaySpec:
    interactions: pathlib.Path
    model_root: pathlib.Path
    name: str = "replay"
    # Train on interactions at or before this Unix time; None: the `train_share` quantile.
    split_at: float | None = None
    train_share: float = 0.8
    weights: Mapping[str, float] | None = None
    params: algorithms.Params | None = None
    k: int = 10
    rounds: int = 1000
    seed: int = 0
    # "in-process": the online arm from reco_sidecar.online directly; "sidecar": from a real
    # sidecar through the Feedback and Recommend RPCs (replay_sidecar.py).
    through: str = "in-process"


THROUGH = ("in-process", "sidecar")


def run(spec: ReplaySpec) -> dict[str, Any]:
    rows = read_rows(spec.interactions)
    t = spec.split_at if spec.split_at is not None else split_time(rows, spec.train_share)
    before = [r for r in rows if r.time <= t]
    order = sorted((r.time, n) for n, r in enumerate(rows) if r.time > t)
    later = [rows[n] for _, n in order]
    if not before or not later:
        raise InvalidArgument(f"split at {t} leaves no interactions to train on or none to replay",
                              field="split_at")
    b = Builder()
    for r in before:
        b.add(r.user_id, r.item_id, r.weight)
    data = b.build(t).sorted_by_id()
    params = spec.params or als.AlsParams()
    types = from_weights(spec.weights or weights.DEFAULT_TYPE_WEIGHTS)
    published = pipeline.train_and_publish(data, spec.model_root, spec.name, params, evaluation=None,
                                           show_progress=False, event_types=types, as_of=t,
                                           training={"replay_split_at": t})
    model = loader.open_model(published.path)
    if spec.through == "sidecar":
        from reco_sidecar.experiments.replay_sidecar import SidecarReplay

        with SidecarReplay(spec.model_root, spec.name, published.version) as served:
            scored, counts = replay(model, later, spec.k, served)
        through = (f"sidecar: a real sidecar on loopback (1 worker, --online-dir); {served.feedback_calls} "
                   f"Feedback calls in time order and {served.recommend_calls} Recommend calls for the online arm")
    elif spec.through == "in-process":
        scored, counts = replay(model, later, spec.k)
        through = ("in-process: reco_sidecar.online (event validation, user histories, the exact re-solve); "
                   "the same code a Feedback RPC applies")
    else:
        raise InvalidArgument(f"must be one of {', '.join(THROUGH)}, got {spec.through!r}", field="through")
    if not scored:
        raise InvalidArgument("no replayed interaction could be scored (every item unknown or seen)",
                              field="replay")
    users = np.array([s.user for s in scored])
    per_arm = {arm: _metrics(np.array([s.ranks[arm] for s in scored])) for arm in ARMS}
    k = spec.k
    report: dict[str, Any] = {
        "through": through,
        "interactions": str(spec.interactions),
        "split_at": t,
        "split_at_iso": dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds"),
        "trained": {"interactions": len(before), "users": len(data.user_ids), "items": len(data.item_ids),
                    "pairs": int(data.matrix.nnz), "algorithm": algorithms.name(params), **params.as_dict(),
                    "version": str(published.path)},
        "counts": {**counts, "scored_users": len(np.unique(users))},
        "k": k,
        "bootstrap_rounds": spec.rounds,
        "metrics": {arm: {f"recall_at_{k}": float(h.mean()), f"ndcg_at_{k}": float(g.mean())}
                    for arm, (h, g) in per_arm.items()},
        "lift": {
            f"recall_at_{k}": user_bootstrap(users, per_arm["frozen"][0], per_arm["online"][0], spec.rounds,
                                             spec.seed),
            f"ndcg_at_{k}": user_bootstrap(users, per_arm["frozen"][1], per_arm["online"][1], spec.rounds,
                                           spec.seed),
        },
        "by_day": _by_day(scored, per_arm, t),
    }
    return report


def _by_day(scored: Sequence[Scored], per_arm: Mapping[str, tuple[np.ndarray, np.ndarray]],
            t: float) -> list[dict[str, float]]:
    """Recall per day after the split, per arm: how the frozen model ages and the online one keeps up."""
    day = np.array([int((s.time - t) // 86_400) for s in scored])
    out = []
    for d in np.unique(day).tolist():
        sel = day == d
        out.append({"day": d, "scored": int(sel.sum()),
                    **{arm: float(per_arm[arm][0][sel].mean()) for arm in ARMS}})
    return out


def plot(report: Mapping[str, Any], path: pathlib.Path) -> None:
    """Left: recall@k and NDCG@k per arm, the online bar with the lift's 95% interval.
    Right: recall@k by day after the split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = report["k"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = [f"recall_at_{k}", f"ndcg_at_{k}"]
    width = 0.27
    colours = {"frozen": "#999", "seen_only": "#c9a227", "online": "#3a6ea5"}
    for j, arm in enumerate(("frozen", "seen_only", "online")):
        values = [report["metrics"][arm][m] for m in names]
        errors = None
        if arm == "online":
            errors = np.array([[report["lift"][m]["absolute"] - report["lift"][m]["absolute_ci95"][0],
                                report["lift"][m]["absolute_ci95"][1] - report["lift"][m]["absolute"]]
                               for m in names]).T
        left.bar(np.arange(len(names)) + (j - 1) * width, values, width, yerr=errors, capsize=4,
                 label=arm, color=colours[arm])
    left.set_xticks(np.arange(len(names)), [f"recall@{k}", f"NDCG@{k}"])
    left.legend()
    rel = report["lift"][f"recall_at_{k}"]
    if rel["relative"] is not None:
        left.set_title(f"online vs frozen: recall@{k} {rel['relative']:+.1%} "
                       f"[{rel['relative_ci95'][0]:+.1%}, {rel['relative_ci95'][1]:+.1%}]")
    days = report["by_day"]
    for arm in ("frozen", "seen_only", "online"):
        right.plot([d["day"] for d in days], [d[arm] for d in days], marker=".", label=arm, color=colours[arm])
    right.set_xlabel("days after the split")
    right.set_ylabel(f"recall@{k}")
    right.legend()
    fig.suptitle(f"replay of {report['counts']['replayed']} interactions after {report['split_at_iso']} "
                 f"({report['counts']['scored']} scored)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
