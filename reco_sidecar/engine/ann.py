"""Approximate nearest neighbours over item factors (annoy, angular = cosine).

search_k is chosen at build time from recall measured against exact cosine neighbours,
because the right value depends on how clustered the trained factors are.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

import numpy as np
from annoy import AnnoyIndex

SEARCH_K_LADDER = (500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000)


@dataclass(frozen=True)
class AnnBuild:
    trees: int
    search_k: int
    recall_at_10: float
    exact_neighbours: int = 0


def normalized(factors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(factors, axis=1, keepdims=True)
    return np.asarray(factors / np.maximum(norms, 1e-12), dtype=np.float32)


def exact_neighbours(unit: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Rows of the k most cosine-similar items to each query row, the query itself excluded."""
    sims = unit[queries] @ unit.T
    sims[np.arange(len(queries)), queries] = -np.inf
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def recall_at_k(index: AnnoyIndex, truth: np.ndarray, queries: np.ndarray, k: int, search_k: int) -> float:
    hits = 0
    for q, true_rows in zip(queries, truth, strict=True):
        got = [r for r in index.get_nns_by_item(int(q), k + 1, search_k=search_k) if r != q][:k]
        hits += len(set(got) & set(true_rows.tolist()))
    return hits / (len(queries) * k)


def build(
    item_factors: np.ndarray,
    out: pathlib.Path,
    *,
    trees: int = 50,
    target_recall: float = 0.98,
    sample: int = 500,
    seed: int = 7,
) -> AnnBuild:
    n, dim = item_factors.shape
    index = AnnoyIndex(dim, "angular")
    index.set_seed(seed)
    for row in range(n):
        index.add_item(row, item_factors[row].tolist())
    index.build(trees, n_jobs=1)
    index.save(str(out))
    k = min(10, n - 1)
    if k <= 0:
        return AnnBuild(trees, -1, 1.0)
    rng = np.random.default_rng(seed)
    queries = rng.choice(n, size=min(sample, n), replace=False)
    truth = exact_neighbours(normalized(item_factors), queries, k)
    best = (-1, 0.0)
    for search_k in SEARCH_K_LADDER:
        r = recall_at_k(index, truth, queries, k, search_k)
        best = (search_k, r)
        if r >= target_recall or search_k >= n * trees:
            break
    index.unload()
    return AnnBuild(trees, best[0], best[1])


def exact_table(item_factors: np.ndarray, k: int, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Every item's k most cosine-similar items (itself excluded), nearest first, exactly.

    Where trained factors have little cluster structure annoy needs a search_k that makes
    it slower than exact scoring to reach a useful recall; a table costs one blocked
    all-pairs product at build time and makes Similar a row lookup.
    """
    from reco_sidecar.engine.topk import select

    unit = normalized(item_factors)
    n = len(unit)
    k = min(k, n - 1)
    rows = np.empty((n, k), dtype=np.int32)
    sims = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, block):
        part = unit[start : start + block] @ unit.T
        part[np.arange(len(part)), np.arange(start, start + len(part))] = -np.inf
        r, v = select(part, k)
        rows[start : start + block] = r
        sims[start : start + block] = v
    return rows, sims


def open_index(path: pathlib.Path, dim: int) -> AnnoyIndex:
    index = AnnoyIndex(dim, "angular")
    index.load(str(path), prefault=False)
    return index
