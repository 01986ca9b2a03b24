"""Validates a version directory and opens it as a Model.

Nothing is served from a directory until every check passed: manifest, file list, sizes,
sha256 checksums, array dtypes and shapes, id maps, seen-item CSR, ANN item count and
dimension. Arrays and the ANN index are memory-mapped so worker processes share pages.
"""

from __future__ import annotations

import pathlib
import time
import weakref
from typing import Any

import msgpack
import numpy as np
from annoy import AnnoyIndex

from reco_sidecar.artifact import checksums, layout, source
from reco_sidecar.artifact import manifest as manifest_mod
from reco_sidecar.artifact.manifest import Manifest
from reco_sidecar.common.errors import ArtifactError
from reco_sidecar.engine import ann, foldin, scoring
from reco_sidecar.engine.idindex import IdIndex
from reco_sidecar.engine.metadata import ItemCatalog
from reco_sidecar.engine.model import Model, ModelInfo


def _file(root: pathlib.Path, name: str) -> pathlib.Path:
    path = root / name
    if not path.exists():
        raise ArtifactError(path, "file listed in the manifest is missing")
    real = path.resolve()
    if real.parent != root.resolve():
        raise ArtifactError(path, f"resolves outside the version directory (to {real})")
    if not real.is_file():
        raise ArtifactError(path, "is not a regular file")
    return path


def verify(version_dir: pathlib.Path, *, checksums_too: bool = True) -> Manifest:
    """Checks the manifest against the files on disk; returns the manifest."""
    version_dir = pathlib.Path(version_dir)
    man = manifest_mod.read(version_dir)
    number = source.version_number(version_dir.name)
    if number is not None and number != man.version:
        raise ArtifactError(version_dir, f"manifest says version {man.version}, directory says {version_dir.name}")
    for name, entry in man.files.items():
        path = _file(version_dir, name)
        size = path.stat().st_size
        if size != entry.bytes:
            raise ArtifactError(path, f"size {size} bytes, manifest says {entry.bytes} (truncated or replaced)")
        if checksums_too and checksums.digest(path) != entry.sha256:
            raise ArtifactError(path, "sha256 does not match the manifest (corrupted or replaced)")
    # Headers and index counts are cheap to read: checking them here lets the supervisor
    # refuse a bad version before any worker tries (and fails) to open it.
    _arrays(version_dir, man)
    _ann(version_dir, man).unload()
    return man


def _arrays(version_dir: pathlib.Path, man: Manifest) -> dict[str, np.ndarray]:
    u, i, d = man.user_count, man.item_count, man.factors
    expected: dict[str, tuple[type, tuple[int, ...]]] = {
        layout.USER_FACTORS: (np.float32, (u, d)),
        layout.ITEM_FACTORS: (np.float32, (i, d)),
        layout.SEEN_INDPTR: (np.int64, (u + 1,)),
        layout.SEEN_INDICES: (np.int32, (man.seen_count,)),
        layout.ITEM_POPULARITY: (np.float32, (i,)),
    }
    if layout.COLD_START_VECTOR in man.files:
        expected[layout.COLD_START_VECTOR] = (np.float32, (d,))
    if man.ann.exact_neighbours:
        expected[layout.ITEM_NEIGHBOURS] = (np.int32, (i, man.ann.exact_neighbours))
        expected[layout.ITEM_NEIGHBOUR_SCORES] = (np.float32, (i, man.ann.exact_neighbours))
    return {name: _array(version_dir / name, dtype, shape) for name, (dtype, shape) in expected.items()}


def _ann(version_dir: pathlib.Path, man: Manifest) -> AnnoyIndex:
    path = version_dir / layout.ANN_INDEX
    try:
        index = ann.open_index(path, man.factors)
    except OSError as e:
        raise ArtifactError(path, f"annoy index does not load: {e}") from None
    if index.get_n_items() != man.item_count:
        raise ArtifactError(path, f"annoy index holds {index.get_n_items()} items, manifest says {man.item_count}")
    if man.item_count and index.f != man.factors:
        raise ArtifactError(path, f"annoy index has dimension {index.f}, manifest says {man.factors}")
    return index


def _array(path: pathlib.Path, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    try:
        arr: np.ndarray = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ArtifactError(path, f"not a readable .npy array: {e}") from None
    if arr.dtype != np.dtype(dtype):
        raise ArtifactError(path, f"dtype {arr.dtype}, expected {np.dtype(dtype)}")
    if arr.shape != shape:
        raise ArtifactError(path, f"shape {arr.shape}, expected {shape}")
    return arr


# Id maps by content: a retrained version usually keeps the same users and items, and
# reusing the serving version's map saves the reload its largest pure-Python cost.
_id_maps: weakref.WeakValueDictionary[str, IdIndex] = weakref.WeakValueDictionary()


def _id_index(path: pathlib.Path, sha256: str, count: int, what: str) -> IdIndex:
    cached = _id_maps.get(sha256)
    if cached is not None and len(cached) == count:
        return cached
    index = IdIndex(_ids(path, count, what))
    # The map has fewer keys than the list exactly when an id repeats: no separate set needed.
    if len(index.rows) != len(index.ids):
        raise ArtifactError(path, f"{what} ids are not unique")
    _id_maps[sha256] = index
    return index


def _ids(path: pathlib.Path, count: int, what: str) -> list[str]:
    try:
        ids = msgpack.unpackb(path.read_bytes())
    except (ValueError, msgpack.UnpackException) as e:
        raise ArtifactError(path, f"{what} id map is not valid msgpack: {e}") from None
    if not isinstance(ids, list) or not all(type(i) is str for i in ids):
        raise ArtifactError(path, f"{what} id map must be a list of strings")
    if len(ids) != count:
        raise ArtifactError(path, f"{len(ids)} {what} ids, manifest says {count}")
    return ids


def _catalog(path: pathlib.Path, item_count: int) -> ItemCatalog:
    try:
        raw: Any = msgpack.unpackb(path.read_bytes())
    except (ValueError, msgpack.UnpackException) as e:
        raise ArtifactError(path, f"item metadata is not valid msgpack: {e}") from None
    cats, tags = (raw.get("categories"), raw.get("tags")) if isinstance(raw, dict) else (None, None)
    if not isinstance(cats, list) or not isinstance(tags, list) or len(cats) != item_count or len(tags) != item_count:
        raise ArtifactError(path, f"item metadata needs 'categories' and 'tags' lists of {item_count} entries")
    if not all(isinstance(c, str) for c in cats) or not all(
        isinstance(t, list) and all(isinstance(x, str) for x in t) for t in tags
    ):
        raise ArtifactError(path, "item metadata categories must be strings and tags lists of strings")
    return ItemCatalog(cats, tags)


def open_model(version_dir: pathlib.Path, *, checksums_too: bool = True) -> Model:
    """Verifies and opens a version. Raises ArtifactError saying what is wrong."""
    started = time.perf_counter()
    version_dir = pathlib.Path(version_dir)
    man = verify(version_dir, checksums_too=checksums_too)
    u, i = man.user_count, man.item_count
    arrays = _arrays(version_dir, man)
    user_factors, item_factors = arrays[layout.USER_FACTORS], arrays[layout.ITEM_FACTORS]
    indptr, indices = arrays[layout.SEEN_INDPTR], arrays[layout.SEEN_INDICES]
    popularity = arrays[layout.ITEM_POPULARITY]
    if not (np.isfinite(item_factors).all() and np.isfinite(user_factors).all()):
        raise ArtifactError(version_dir, "factors contain NaN or infinity")
    if indptr[0] != 0 or indptr[-1] != man.seen_count or (len(indptr) > 1 and np.any(np.diff(indptr) < 0)):
        raise ArtifactError(version_dir / layout.SEEN_INDPTR, "seen-item offsets are not a valid CSR index")
    if man.seen_count and (indices.min() < 0 or indices.max() >= i):
        raise ArtifactError(version_dir / layout.SEEN_INDICES, "seen items name rows outside the item range")
    users = _id_index(version_dir / layout.USER_IDS, man.files[layout.USER_IDS].sha256, u, "user")
    items = _id_index(version_dir / layout.ITEM_IDS, man.files[layout.ITEM_IDS].sha256, i, "item")
    index = _ann(version_dir, man)
    catalog = None
    if layout.ITEM_METADATA in man.files:
        catalog = _catalog(version_dir / layout.ITEM_METADATA, i)
    popular_rows = np.argsort(-popularity, kind="stable")
    if layout.DEFAULT_ITEMS in man.files:
        default = np.load(version_dir / layout.DEFAULT_ITEMS, allow_pickle=False).astype(np.int64)
        if default.ndim != 1 or (len(default) and (default.min() < 0 or default.max() >= i)):
            raise ArtifactError(version_dir / layout.DEFAULT_ITEMS, "default items are not item rows")
        rest = popular_rows[~np.isin(popular_rows, default)]
        popular_rows = np.concatenate([default, rest])
    cold = arrays.get(layout.COLD_START_VECTOR)
    neighbours = arrays.get(layout.ITEM_NEIGHBOURS)
    if neighbours is not None and len(neighbours) and (neighbours.min() < 0 or neighbours.max() >= i):
        raise ArtifactError(version_dir / layout.ITEM_NEIGHBOURS, "neighbour table names rows outside the items")
    model = Model(
        name=man.name,
        version=man.version,
        path=version_dir,
        info=ModelInfo(algorithm=man.algorithm, metrics=dict(man.metrics), fold_in=dict(man.fold_in),
                       search_k=man.ann.search_k),
        user_factors=user_factors,
        item_factors=item_factors,
        users=users,
        items=items,
        seen_indptr=indptr,
        seen_indices=indices,
        popularity=popularity,
        popular_rows=popular_rows,
        ann=index,
        item_norms=np.linalg.norm(item_factors, axis=1),
        yty=foldin.gram(item_factors),
        catalog=catalog,
        loaded_at=time.time(),
        load_seconds=0.0,
        cold_start_vector=cold,
        neighbours=neighbours,
        neighbour_scores=arrays.get(layout.ITEM_NEIGHBOUR_SCORES),
        norm_order=scoring.NormOrder.build(item_factors),
    )
    object.__setattr__(model, "load_seconds", time.perf_counter() - started)
    return model

