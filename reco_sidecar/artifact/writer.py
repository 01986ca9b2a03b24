"""Writes a model version atomically: everything goes to a hidden temporary directory,
is fsynced, and only then renamed to the next integer version, so a reader never sees
a half-written version."""

from __future__ import annotations

import datetime as dt
import os
import pathlib
import shutil
import uuid
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from reco_sidecar.artifact import idmaps, layout
from reco_sidecar.artifact.checksums import sha256_file
from reco_sidecar.artifact.durable import fsync_path
from reco_sidecar.artifact.manifest import AnnParams, FileEntry, Manifest
from reco_sidecar.artifact.version_dirs import list_versions
from reco_sidecar.engine import ann, scoring
from reco_sidecar.engine.eventtypes import EventType
from reco_sidecar.engine.objective import Objective


@dataclass(frozen=True)
class ItemMetadata:
    categories: list[str]
    tags: list[list[str]]
    # More per-item string fields (creator, ...), each a list as long as the items.
    fields: dict[str, list[str]] = field(default_factory=dict)
    # Unix seconds each item was created, for the ranking stage's freshness rule.
    created_at: list[int] | None = None


@dataclass(frozen=True)
class ArtifactContent:
    user_ids: list[str]
    item_ids: list[str]
    user_factors: np.ndarray
    item_factors: np.ndarray
    # CSR of each user's seen item rows.
    seen_indptr: np.ndarray
    seen_indices: np.ndarray
    item_popularity: np.ndarray
    algorithm: str
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    fold_in: dict[str, float] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    item_metadata: ItemMetadata | None = None
    cold_start_vector: np.ndarray | None = None
    default_items: np.ndarray | None = None
    # Each seen pair's training value r, aligned with seen_indices (None: not known).
    seen_weights: np.ndarray | None = None
    event_types: dict[str, EventType] = field(default_factory=dict)
    objective: Objective | None = None
    # Unix time the training data ends.
    as_of: float | None = None


# Above this many items the all-pairs product for the exact table gets too slow to build.
EXACT_TABLE_MAX_ITEMS = 300_000


def _write_files(tmp: pathlib.Path, c: ArtifactContent, ann_trees: int, ann_recall: float,
                 neighbours: int) -> ann.AnnBuild:
    np.save(tmp / layout.USER_FACTORS, np.ascontiguousarray(c.user_factors, dtype=np.float32))
    np.save(tmp / layout.ITEM_FACTORS, np.ascontiguousarray(c.item_factors, dtype=np.float32))
    np.save(tmp / layout.SEEN_INDPTR, np.asarray(c.seen_indptr, dtype=np.int64))
    np.save(tmp / layout.SEEN_INDICES, np.asarray(c.seen_indices, dtype=np.int32))
    if c.seen_weights is not None:
        np.save(tmp / layout.SEEN_WEIGHTS, np.asarray(c.seen_weights, dtype=np.float32))
    np.save(tmp / layout.ITEM_POPULARITY, np.asarray(c.item_popularity, dtype=np.float32))
    for ids, name, derived in ((c.user_ids, layout.USER_IDS, layout.USER_ID_FILES),
                               (c.item_ids, layout.ITEM_IDS, layout.ITEM_ID_FILES)):
        encoded = idmaps.encode(list(ids))
        (tmp / name).write_bytes(encoded.data)
        for file, arr in zip(derived, (encoded.spans, encoded.hashes, encoded.hash_rows), strict=True):
            np.save(tmp / file, arr)
    if c.item_metadata is not None:
        meta: dict[str, Any] = {"categories": c.item_metadata.categories, "tags": c.item_metadata.tags}
        if c.item_metadata.fields:  # written only when present: older artifacts keep their bytes
            meta["fields"] = c.item_metadata.fields
        if c.item_metadata.created_at is not None:
            meta["created_at"] = c.item_metadata.created_at
        (tmp / layout.ITEM_METADATA).write_bytes(msgpack.packb(meta))
    if c.cold_start_vector is not None:
        np.save(tmp / layout.COLD_START_VECTOR, np.asarray(c.cold_start_vector, dtype=np.float32))
    if c.default_items is not None:
        np.save(tmp / layout.DEFAULT_ITEMS, np.asarray(c.default_items, dtype=np.int32))
    factors = np.asarray(c.item_factors, dtype=np.float32)
    # exactly the kernel's own construction, so a loaded order equals one built at load
    order = scoring.NormOrder.build(factors)
    np.save(tmp / layout.ITEMS_BY_NORM, order.items)
    np.save(tmp / layout.ITEM_NORM_ORDER, np.asarray(order.rows, dtype=np.int64))
    np.save(tmp / layout.ITEM_NORMS, np.asarray(order.norms, dtype=np.float64))
    del order
    built = ann.build(factors, tmp / layout.ANN_INDEX, trees=ann_trees, target_recall=ann_recall)
    if neighbours > 0 and 1 < len(factors) <= EXACT_TABLE_MAX_ITEMS:
        rows, sims = ann.exact_table(factors, neighbours)
        np.save(tmp / layout.ITEM_NEIGHBOURS, rows)
        np.save(tmp / layout.ITEM_NEIGHBOUR_SCORES, sims)
        built = ann.AnnBuild(built.trees, built.search_k, built.recall_at_10, int(rows.shape[1]))
    return built


def write_version(
    model_root: pathlib.Path,
    name: str,
    content: ArtifactContent,
    *,
    ann_trees: int = 50,
    ann_target_recall: float = 0.98,
    exact_neighbours: int = 50,
    first_version: int = 1,
) -> pathlib.Path:
    """Writes `content` as the next version of `name` and returns the published directory.
    `first_version`: the smallest number to take (a model store's next free version)."""
    model_dir = pathlib.Path(model_root) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = model_dir / f"{layout.TMP_PREFIX}{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        built = _write_files(tmp, content, ann_trees, ann_target_recall, exact_neighbours)
        files = {p.name: FileEntry(sha256_file(p), p.stat().st_size) for p in sorted(tmp.iterdir())}
        for p in tmp.iterdir():
            fsync_path(p)
        while True:
            versions = list_versions(model_dir)
            version = max((versions[-1] + 1) if versions else 1, first_version)
            manifest = _manifest(name, version, content, files, built)
            (tmp / layout.MANIFEST).write_text(_dumps(manifest.to_json()))
            fsync_path(tmp / layout.MANIFEST)
            try:
                os.rename(tmp, model_dir / str(version))
            except OSError:
                if (model_dir / str(version)).exists():
                    continue  # another writer published this number first
                raise
            fsync_path(model_dir)
            return model_dir / str(version)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _dumps(obj: dict[str, Any]) -> str:
    import json

    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def _manifest(
    name: str, version: int, c: ArtifactContent, files: dict[str, FileEntry], built: ann.AnnBuild
) -> Manifest:
    return Manifest(
        format_version=layout.FORMAT_VERSION,
        name=name,
        version=version,
        algorithm=c.algorithm,
        factors=int(c.item_factors.shape[1]),
        user_count=len(c.user_ids),
        item_count=len(c.item_ids),
        seen_count=len(c.seen_indices),
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        files=files,
        ann=AnnParams(trees=built.trees, search_k=built.search_k, recall_at_10=round(built.recall_at_10, 4),
                      exact_neighbours=built.exact_neighbours),
        training=c.training,
        metrics=c.metrics,
        fold_in=c.fold_in,
        source=c.source,
        event_types=dict(c.event_types),
        objective=c.objective,
        as_of=c.as_of,
    )
