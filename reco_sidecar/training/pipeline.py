"""From interactions to a published version: evaluate on a hold-out split, train, package,
write atomically.

The published model is trained on all the data, not on the train split: the split only
estimates how well this algorithm and these parameters do, and the held-out interactions
are the freshest signal a user gave, too valuable to leave out of what is served.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reco_sidecar.artifact.writer import ArtifactContent, ItemMetadata, write_version
from reco_sidecar.common import logs
from reco_sidecar.engine.eventtypes import EventType
from reco_sidecar.engine.objective import Objective
from reco_sidecar.training import algorithms, als, progress
from reco_sidecar.training.evaluate import evaluate
from reco_sidecar.training.interactions import Interactions
from reco_sidecar.training.split import holdout

log = logs.get(__name__)


def package(
    data: Interactions,
    user_factors: Any,
    item_factors: Any,
    *,
    algorithm: str,
    training: dict[str, Any],
    fold_in: dict[str, float],
    metrics: dict[str, float] | None = None,
    item_metadata: ItemMetadata | None = None,
    source: dict[str, Any] | None = None,
    event_types: dict[str, EventType] | None = None,
    objective: Objective | None = None,
    as_of: float | None = None,
) -> ArtifactContent:
    indptr, indices = data.seen
    return ArtifactContent(
        user_ids=data.user_ids,
        item_ids=data.item_ids,
        user_factors=user_factors,
        item_factors=item_factors,
        seen_indptr=indptr,
        seen_indices=indices,
        item_popularity=data.popularity(),
        algorithm=algorithm,
        training=training,
        metrics=metrics or {},
        fold_in=fold_in,
        source=source or {},
        item_metadata=item_metadata,
        seen_weights=data.matrix.data.astype(np.float32),
        event_types=dict(event_types or {}),
        objective=objective,
        as_of=as_of,
    )


@dataclass(frozen=True)
class Evaluation:
    # 0 turns evaluation off.
    holdout: float = 0.2
    k: int = 10
    seed: int = 7
    # Users with fewer items keep them all in train.
    min_user_items: int = 5
    # Held-out users scored, a seeded sample when there are more (0: all). Scoring is one
    # product against every item per user: O(users x items), the step that outgrows training
    # itself first as the data grows (docs/performance.md, "Training engines").
    max_users: int = 50_000

    def as_dict(self) -> dict[str, float | int]:
        return {"holdout": self.holdout, "k": self.k, "seed": self.seed,
                "min_user_items": self.min_user_items, "max_users": self.max_users}


@dataclass(frozen=True)
class Published:
    path: pathlib.Path
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def version(self) -> int:
        return int(self.path.name)


def train_and_publish(
    data: Interactions,
    model_root: pathlib.Path,
    name: str,
    params: algorithms.Params,
    *,
    evaluation: Evaluation | None = None,
    item_metadata: ItemMetadata | None = None,
    source: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    ann_trees: int = 50,
    exact_neighbours: int = 50,
    show_progress: bool | None = None,
    first_version: int = 1,
    event_types: dict[str, EventType] | None = None,
    as_of: float | None = None,
) -> Published:
    """Evaluates (unless evaluation is None or its holdout is 0), trains on everything, publishes."""
    algorithm = algorithms.name(params)
    metrics: dict[str, float] = {}
    show = progress.shown(show_progress)
    if evaluation is not None and evaluation.holdout > 0:
        split = holdout(data.matrix, evaluation.holdout, seed=evaluation.seed,
                        min_items=evaluation.min_user_items)
        log.info("training", algorithm=algorithm, data="train split", nnz=split.train.nnz,
                 held_out=split.test.nnz)
        users, items = algorithms.fit(split.train, params, progress=show)
        metrics = evaluate(split, users, items, evaluation.k, show_progress=show_progress,
                           max_users=evaluation.max_users, seed=evaluation.seed)
    log.info("training", algorithm=algorithm, data="all", users=len(data.user_ids), items=len(data.item_ids),
             nnz=data.matrix.nnz)
    users, items = algorithms.fit(data.matrix, params, progress=show)
    content = package(
        data, users, items,
        algorithm=algorithm,
        training={"algorithm": algorithm, **params.as_dict(),
                  **({"evaluation": evaluation.as_dict()} if evaluation is not None else {}),
                  "users": len(data.user_ids), "items": len(data.item_ids), "pairs": int(data.matrix.nnz),
                  **(training or {})},
        fold_in=algorithms.fold_in(params),
        metrics=metrics,
        item_metadata=item_metadata,
        source=source,
        event_types=event_types,
        objective=algorithms.objective(params),
        as_of=as_of if as_of is not None else data.latest,
    )
    with progress.bar(show_progress, desc="publishing (ANN index, checksums)", total=1) as bar:
        path = write_version(model_root, name, content, ann_trees=ann_trees, exact_neighbours=exact_neighbours,
                             first_version=first_version)
        bar.update(1)
    log.info("published", model=name, version=int(path.name), path=str(path), algorithm=algorithm)
    return Published(path, metrics)


def train_als(
    data: Interactions,
    model_root: pathlib.Path,
    name: str,
    params: als.AlsParams,
    *,
    item_metadata: ItemMetadata | None = None,
    source: dict[str, Any] | None = None,
    ann_trees: int = 50,
    progress: bool = False,
) -> pathlib.Path:
    """ALS on everything, no evaluation: the original entry point, kept for its callers."""
    return train_and_publish(data, model_root, name, params, item_metadata=item_metadata, source=source,
                             ann_trees=ann_trees, show_progress=progress).path
