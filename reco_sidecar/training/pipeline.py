"""From interactions to a published version: train, package, write atomically."""

from __future__ import annotations

import pathlib
from typing import Any

from reco_sidecar.artifact.writer import ArtifactContent, ItemMetadata, write_version
from reco_sidecar.training import als
from reco_sidecar.training.interactions import Interactions


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
    )


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
    users, items = als.train(data.matrix, params, progress=progress)
    content = package(
        data, users, items,
        algorithm="als",
        training=params.as_dict(),
        fold_in={"regularization": params.regularization, "alpha": params.alpha},
        item_metadata=item_metadata,
        source=source,
    )
    return write_version(model_root, name, content, ann_trees=ann_trees)
