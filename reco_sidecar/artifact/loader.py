"""Validates a version directory and opens it as a Model.

Nothing is served from a directory until every check passed: manifest, file list, sizes,
sha256 checksums, array dtypes and shapes, id maps, seen-item CSR, ANN item count and
dimension. The files are held open by descriptors first (opened.py): the checksums are those of
the very files that are then memory-mapped, so worker processes share their pages and no
file swapped in after the check is ever served.
"""

from __future__ import annotations

import pathlib
import time
import weakref
from typing import Any

import msgpack
import numpy as np
from annoy import AnnoyIndex

from reco_sidecar.artifact import expected, idmaps, layout, version_dirs
from reco_sidecar.artifact import manifest as manifest_mod
from reco_sidecar.artifact.manifest import Manifest
from reco_sidecar.artifact.opened import OpenedVersion
from reco_sidecar.common import names
from reco_sidecar.common.errors import ArtifactError
from reco_sidecar.engine import ann, foldin, scoring
from reco_sidecar.engine.idindex import DictIdIndex, IdIndex
from reco_sidecar.engine.metadata import ItemCatalog
from reco_sidecar.engine.model import Model, ModelInfo

__all__ = ["manifest_mod", "open_model", "verify"]


def verify(version_dir: pathlib.Path, *, checksums_too: bool = True) -> Manifest:
    """Checks the manifest against the files on disk; returns the manifest."""
    with OpenedVersion(pathlib.Path(version_dir)) as pv:
        arrays = _check(pv, checksums_too)
        # The factors' numbers too: a NaN the checksums vouch for fails every worker's open, so
        # a version `latest` (or an arm, or the store) picked for it would crash-loop the pool.
        # The pages were just read for the checksums: this pass costs no disk reads.
        _factors_finite(pv, arrays)
        # Headers and index counts are cheap to read: checking them here lets the supervisor
        # refuse a bad version before any worker tries (and fails) to open it.
        _ann(pv).unload()
        return pv.manifest


def _factors_finite(pv: OpenedVersion, arrays: dict[str, np.ndarray]) -> None:
    for name in (layout.USER_FACTORS, layout.ITEM_FACTORS, layout.COLD_START_VECTOR, layout.SEEN_WEIGHTS):
        _finite(pv, arrays, name)


def _check(pv: OpenedVersion, checksums_too: bool) -> dict[str, np.ndarray]:
    """Manifest against directory name, files, sizes and checksums; every array's header.
    Returns the arrays, mapped from the pinned files."""
    man = pv.manifest
    number = version_dirs.version_number(pv.dir.name)
    if number is not None and number != man.version:
        raise ArtifactError(pv.dir, f"manifest says version {man.version}, directory says {pv.dir.name}")
    # A version sits in its model's directory: the model it answers as (and labels metrics
    # with) is the directory's, so a manifest naming another model is a copy put in the wrong
    # place, not a version of this one.
    if number is not None and pv.dir.parent.name != man.name:
        raise ArtifactError(pv.dir, f"manifest names model {man.name!r}, but the version is in the directory of "
                            f"model {names.printable(pv.dir.parent.name)}")
    pv.open_all(checksums_too=checksums_too)
    return {name: pv.array(name, spec) for name, spec in expected.arrays(man).items()}


def _ann(pv: OpenedVersion) -> AnnoyIndex:
    man = pv.manifest
    f = pv.file(layout.ANN_INDEX)
    try:
        # annoy opens by path: the descriptor's /proc path opens the verified inode itself
        index = ann.open_index(pathlib.Path(f.proc_path), man.factors)
    except OSError as e:
        raise ArtifactError(f.path, f"annoy index does not load: {e}") from None
    if index.get_n_items() != man.item_count:
        index.unload()
        raise ArtifactError(f.path, f"annoy index holds {index.get_n_items()} items, manifest says {man.item_count}")
    if man.item_count and index.f != man.factors:
        index.unload()
        raise ArtifactError(f.path, f"annoy index has dimension {index.f}, manifest says {man.factors}")
    return index


# Id maps by content: a retrained version usually keeps the same users and items, and
# reusing the serving version's map saves the reload its largest pure-Python cost.
_id_maps: weakref.WeakValueDictionary[str, DictIdIndex] = weakref.WeakValueDictionary()


def _id_index(pv: OpenedVersion, arrays: dict[str, np.ndarray], name: str, derived: tuple[str, str, str],
              count: int, what: str) -> IdIndex:
    f = pv.file(name)
    if derived[0] in arrays:
        # mapped in place from the verified descriptor: nothing per id is built
        spans, hashes, rows = (arrays[d] for d in derived)
        return idmaps.hashed_index(f.fd, f.path, f.size, count, what, spans, hashes, rows,
                                   (pv.file(derived[1]).path, pv.file(derived[2]).path))
    sha256 = pv.manifest.files[name].sha256
    cached = _id_maps.get(sha256)
    if cached is not None and len(cached) == count:
        return cached
    path = f.path
    index = DictIdIndex(_ids(pv.verified_bytes(name), path, count, what))
    # The map has fewer keys than the list exactly when an id repeats: no separate set needed.
    if len(index.rows) != len(index):
        raise ArtifactError(path, f"{what} ids are not unique")
    _id_maps[sha256] = index
    return index


def _ids(data: bytes, path: pathlib.Path, count: int, what: str) -> list[str]:
    try:
        ids = msgpack.unpackb(data)
    except (ValueError, msgpack.UnpackException) as e:
        raise ArtifactError(path, f"{what} id map is not valid msgpack: {e}") from None
    if not isinstance(ids, list) or not all(type(i) is str for i in ids):
        raise ArtifactError(path, f"{what} id map must be a list of strings")
    if len(ids) != count:
        raise ArtifactError(path, f"{len(ids)} {what} ids, manifest says {count}")
    return ids


def _catalog(pv: OpenedVersion, item_count: int) -> ItemCatalog:
    path = pv.file(layout.ITEM_METADATA).path
    try:
        raw: Any = msgpack.unpackb(pv.verified_bytes(layout.ITEM_METADATA))
    except (ValueError, msgpack.UnpackException) as e:
        raise ArtifactError(path, f"item metadata is not valid msgpack: {e}") from None
    cats, tags = (raw.get("categories"), raw.get("tags")) if isinstance(raw, dict) else (None, None)
    if not isinstance(cats, list) or not isinstance(tags, list) or len(cats) != item_count or len(tags) != item_count:
        raise ArtifactError(path, f"item metadata needs 'categories' and 'tags' lists of {item_count} entries")
    if not all(isinstance(c, str) for c in cats) or not all(
        isinstance(t, list) and all(isinstance(x, str) for x in t) for t in tags
    ):
        raise ArtifactError(path, "item metadata categories must be strings and tags lists of strings")
    fields, created = raw.get("fields", {}), raw.get("created_at")
    if not isinstance(fields, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and len(v) == item_count and all(isinstance(x, str) for x in v)
        for k, v in fields.items()
    ):
        raise ArtifactError(path, f"item metadata 'fields' must map names to lists of {item_count} strings")
    if created is not None and (not isinstance(created, list) or len(created) != item_count
                                or not all(type(x) is int and 0 <= x < 1 << 62 for x in created)):
        raise ArtifactError(path, f"item metadata 'created_at' must be {item_count} non-negative integers")
    return ItemCatalog(cats, tags, fields, created)


def _finite(pv: OpenedVersion, arrays: dict[str, np.ndarray], name: str) -> None:
    arr = arrays.get(name)
    if arr is None:
        return
    for s in range(0, len(arr), 1 << 14):  # a chunk at a time: no boolean copy of the whole array
        if not np.isfinite(arr[s : s + (1 << 14)]).all():
            what = "seen weights" if name == layout.SEEN_WEIGHTS else "factors"
            raise ArtifactError(pv.file(name).path, f"{what} contain NaN or infinity")


def _popular_rows(pv: OpenedVersion, popularity: np.ndarray, item_count: int) -> np.ndarray:
    popular_rows = np.argsort(-popularity, kind="stable")
    if layout.DEFAULT_ITEMS not in pv.files:
        return popular_rows
    raw = pv.array(layout.DEFAULT_ITEMS)
    if raw.dtype != np.int32 or raw.ndim != 1:
        raise ArtifactError(pv.file(layout.DEFAULT_ITEMS).path, f"default items must be a 1-D int32 array, "
                            f"got {raw.dtype} with shape {raw.shape}")
    default = raw.astype(np.int64)
    if len(default) and (default.min() < 0 or default.max() >= item_count):
        raise ArtifactError(pv.file(layout.DEFAULT_ITEMS).path, "default items are not item rows")
    rest = popular_rows[~np.isin(popular_rows, default)]
    return np.concatenate([default, rest])


# Positions spot-checked against item_factors: the manifest's checksums vouch for the stored
# order as a whole (the writer derives it), this catches a writer that got it wrong.
NORM_ORDER_SAMPLE = 64


def _norm_order(pv: OpenedVersion, arrays: dict[str, np.ndarray], item_factors: np.ndarray) -> scoring.NormOrder:
    """The scoring kernel's norm order: mapped from the artifact when it has one (one copy in
    the page cache for every worker), else built here as a private copy (older artifacts)."""
    if layout.ITEMS_BY_NORM not in arrays:
        return scoring.NormOrder.build(item_factors)
    items, rows, norms = (arrays[layout.ITEMS_BY_NORM], arrays[layout.ITEM_NORM_ORDER], arrays[layout.ITEM_NORMS])
    n = len(rows)
    positions = np.full(n, -1, dtype=np.int64)
    if n and (rows.min() < 0 or rows.max() >= n):
        raise ArtifactError(pv.file(layout.ITEM_NORM_ORDER).path, "names rows outside the items")
    positions[rows] = np.arange(n)
    if (positions < 0).any():
        raise ArtifactError(pv.file(layout.ITEM_NORM_ORDER).path, "is not a permutation of the item rows")
    if not (np.isfinite(norms).all() and (norms >= 0).all() and (n < 2 or (np.diff(norms) <= 0).all())):
        raise ArtifactError(pv.file(layout.ITEM_NORMS).path, "norms are not finite, non-negative and descending")
    sample = np.random.default_rng(n).choice(n, size=min(n, NORM_ORDER_SAMPLE), replace=False) if n else rows[:0]
    if not np.array_equal(items[sample], item_factors[rows[sample]]):
        raise ArtifactError(pv.file(layout.ITEMS_BY_NORM).path, "rows differ from item_factors in the stored order")
    recomputed = np.linalg.norm(np.asarray(items[sample], dtype=np.float64), axis=1)
    if not np.allclose(recomputed, norms[sample], rtol=1e-9, atol=0.0):
        raise ArtifactError(pv.file(layout.ITEM_NORMS).path, "norms differ from the sorted factors' norms")
    return scoring.NormOrder(items, norms, rows, positions)


def open_model(version_dir: pathlib.Path, *, checksums_too: bool = True) -> Model:
    """Verifies and opens a version. Raises ArtifactError saying what is wrong.

    checksums_too=False skips only the sha256 comparison (benchmarks of the rest of loading);
    the sidecar always verifies.
    """
    started = time.perf_counter()
    with OpenedVersion(pathlib.Path(version_dir)) as pv:
        man = pv.manifest
        arrays = _check(pv, checksums_too)
        u, i = man.user_count, man.item_count
        user_factors, item_factors = arrays[layout.USER_FACTORS], arrays[layout.ITEM_FACTORS]
        indptr, indices = arrays[layout.SEEN_INDPTR], arrays[layout.SEEN_INDICES]
        _factors_finite(pv, arrays)
        if indptr[0] != 0 or indptr[-1] != man.seen_count or (len(indptr) > 1 and np.any(np.diff(indptr) < 0)):
            raise ArtifactError(pv.file(layout.SEEN_INDPTR).path, "seen-item offsets are not a valid CSR index")
        if man.seen_count and (indices.min() < 0 or indices.max() >= i):
            raise ArtifactError(pv.file(layout.SEEN_INDICES).path, "seen items name rows outside the item range")
        neighbours = arrays.get(layout.ITEM_NEIGHBOURS)
        if neighbours is not None and len(neighbours) and (neighbours.min() < 0 or neighbours.max() >= i):
            raise ArtifactError(pv.file(layout.ITEM_NEIGHBOURS).path,
                                "neighbour table names rows outside the items")
        users = _id_index(pv, arrays, layout.USER_IDS, layout.USER_ID_FILES, u, "user")
        items = _id_index(pv, arrays, layout.ITEM_IDS, layout.ITEM_ID_FILES, i, "item")
        catalog = _catalog(pv, i) if layout.ITEM_METADATA in pv.files else None
        popular_rows = _popular_rows(pv, arrays[layout.ITEM_POPULARITY], i)
        norm_order = _norm_order(pv, arrays, item_factors)
        index = _ann(pv)
    yty = foldin.gram(item_factors)
    return Model(
        name=man.name,
        version=man.version,
        path=pv.dir,
        info=ModelInfo(algorithm=man.algorithm, metrics=dict(man.metrics), fold_in=dict(man.fold_in),
                       search_k=man.ann.search_k, objective=man.solve_objective(),
                       event_types=dict(man.event_types), as_of=man.as_of),
        user_factors=user_factors,
        item_factors=item_factors,
        users=users,
        items=items,
        seen_indptr=indptr,
        seen_indices=indices,
        popularity=arrays[layout.ITEM_POPULARITY],
        popular_rows=popular_rows,
        ann=index,
        yty=yty,
        catalog=catalog,
        norm_order=norm_order,
        loaded_at=time.time(),
        load_seconds=time.perf_counter() - started,
        neighbours=neighbours,
        neighbour_scores=arrays.get(layout.ITEM_NEIGHBOUR_SCORES),
        seen_weights=arrays.get(layout.SEEN_WEIGHTS),
    )
