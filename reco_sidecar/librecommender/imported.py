"""A LibRecommender model read into memory, and its conversion to our artifact content."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from reco_sidecar.artifact.writer import ArtifactContent
from reco_sidecar.librecommender.errors import ImportRefused


@dataclass(frozen=True)
class Imported:
    # Row r of each matrix is LibRecommender's inner id r, so its tie order carries over.
    user_ids: list[str]
    item_ids: list[str]
    # Serving form: score = user row . item row (bias columns included).
    user_vectors: np.ndarray
    item_vectors: np.ndarray
    # The vector LibRecommender scores unknown users with (its mean row).
    cold_start_vector: np.ndarray
    # Consumed (user row, item row) pairs: excluded from recommendations as LibRecommender does.
    seen_users: np.ndarray
    seen_items: np.ndarray
    algorithm: str
    default_items: np.ndarray | None = None
    hyper_parameters: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)

    def check(self, where: object) -> Imported:
        u, i = len(self.user_ids), len(self.item_ids)
        if self.user_vectors.ndim != 2 or self.item_vectors.ndim != 2:
            raise ImportRefused(where, "embeddings are not matrices")
        if self.user_vectors.shape[0] != u or self.item_vectors.shape[0] != i:
            raise ImportRefused(where, f"{u} user ids and {i} item ids, but embeddings for "
                                f"{self.user_vectors.shape[0]} users and {self.item_vectors.shape[0]} items")
        width = self.item_vectors.shape[1]
        if self.user_vectors.shape[1] != width or self.cold_start_vector.shape != (width,):
            raise ImportRefused(where, f"user embeddings are {self.user_vectors.shape[1]} wide, "
                                f"item embeddings {width}: they cannot be multiplied")
        if i == 0 or width == 0:
            raise ImportRefused(where, "no items or no factors")
        if not (np.isfinite(self.user_vectors).all() and np.isfinite(self.item_vectors).all()):
            raise ImportRefused(where, "embeddings contain NaN or infinity")
        if len(self.seen_users) != len(self.seen_items):
            raise ImportRefused(where, "consumed pairs are not aligned")
        if len(self.seen_users) and (self.seen_users.min() < 0 or self.seen_users.max() >= u
                                     or self.seen_items.min() < 0 or self.seen_items.max() >= i):
            raise ImportRefused(where, "consumed items name users or items outside the model")
        if self.default_items is not None and len(self.default_items) and (
                self.default_items.min() < 0 or self.default_items.max() >= i):
            raise ImportRefused(where, "default recommendations name items outside the model")
        return self


def _fold_in(hyper: dict[str, Any]) -> dict[str, float]:
    reg, alpha = hyper.get("reg"), hyper.get("alpha")
    ok = (int, float)
    return {"regularization": float(reg) if isinstance(reg, ok) and reg > 0 else 0.1,
            "alpha": float(alpha) if isinstance(alpha, ok) and alpha > 0 else 1.0}


def to_content(imp: Imported) -> ArtifactContent:
    shape = (len(imp.user_ids), len(imp.item_ids))
    seen = sp.csr_matrix((np.ones(len(imp.seen_users), dtype=np.float32),
                          (imp.seen_users.astype(np.int64), imp.seen_items.astype(np.int64))), shape=shape)
    seen.sum_duplicates()
    seen.sort_indices()
    return ArtifactContent(
        user_ids=imp.user_ids,
        item_ids=imp.item_ids,
        user_factors=np.ascontiguousarray(imp.user_vectors, dtype=np.float32),
        item_factors=np.ascontiguousarray(imp.item_vectors, dtype=np.float32),
        seen_indptr=seen.indptr.astype(np.int64),
        seen_indices=seen.indices.astype(np.int32),
        item_popularity=np.bincount(seen.indices, minlength=shape[1]).astype(np.float32),
        algorithm=imp.algorithm,
        training={"hyper_parameters": imp.hyper_parameters},
        fold_in=_fold_in(imp.hyper_parameters),
        source=imp.source,
        cold_start_vector=np.asarray(imp.cold_start_vector, dtype=np.float32),
        default_items=None if imp.default_items is None else imp.default_items.astype(np.int32),
    )
