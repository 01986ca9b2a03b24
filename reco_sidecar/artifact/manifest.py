"""The manifest: what a version directory claims to hold, parsed and checked for shape."""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass, field
from typing import Any

from reco_sidecar.artifact import layout
from reco_sidecar.common.errors import ArtifactError


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    bytes: int


@dataclass(frozen=True)
class AnnParams:
    trees: int
    search_k: int
    recall_at_10: float
    metric: str = "angular"
    # Width of the exact neighbour table (0: none; Similar then uses the index alone).
    exact_neighbours: int = 0


@dataclass(frozen=True)
class Manifest:
    format_version: int
    name: str
    version: int
    algorithm: str
    factors: int
    user_count: int
    item_count: int
    seen_count: int
    created_at: str
    files: dict[str, FileEntry]
    ann: AnnParams
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    # Regularization and confidence scale used to solve a user's vector from items (fold-in).
    fold_in: dict[str, float] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "name": self.name,
            "version": self.version,
            "algorithm": self.algorithm,
            "factors": self.factors,
            "user_count": self.user_count,
            "item_count": self.item_count,
            "seen_count": self.seen_count,
            "created_at": self.created_at,
            "files": {k: {"sha256": v.sha256, "bytes": v.bytes} for k, v in sorted(self.files.items())},
            "ann": {
                "library": "annoy",
                "metric": self.ann.metric,
                "trees": self.ann.trees,
                "search_k": self.ann.search_k,
                "recall_at_10": self.ann.recall_at_10,
                "exact_neighbours": self.ann.exact_neighbours,
            },
            "training": self.training,
            "metrics": self.metrics,
            "fold_in": self.fold_in,
            "source": self.source,
        }


def _get(d: dict[str, Any], key: str, kind: type | tuple[type, ...], where: object) -> Any:
    if key not in d:
        raise ArtifactError(where, f"manifest lacks '{key}'")
    value = d[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ArtifactError(where, f"manifest '{key}' has type {type(value).__name__}")
    return value


def parse(raw: dict[str, Any], where: object) -> Manifest:
    fmt = _get(raw, "format_version", int, where)
    if fmt != layout.FORMAT_VERSION:
        raise ArtifactError(where, f"format_version {fmt} is not supported (expected {layout.FORMAT_VERSION})")
    files_raw = _get(raw, "files", dict, where)
    files: dict[str, FileEntry] = {}
    for name, entry in files_raw.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            raise ArtifactError(where, f"manifest entry for {name} lacks a sha256")
        size = entry.get("bytes")
        if not isinstance(size, int) or size < 0:
            raise ArtifactError(where, f"manifest entry for {name} lacks a byte size")
        if "/" in name or name.startswith("."):
            raise ArtifactError(where, f"manifest names a file outside the version directory: {name!r}")
        files[name] = FileEntry(entry["sha256"], size)
    missing = [f for f in layout.REQUIRED_FILES if f not in files]
    if missing:
        raise ArtifactError(where, f"manifest lists no checksum for {', '.join(missing)}")
    ann = _get(raw, "ann", dict, where)
    counts = {k: _get(raw, k, int, where) for k in ("factors", "user_count", "item_count", "seen_count")}
    if counts["factors"] <= 0 or counts["item_count"] <= 0 or counts["user_count"] < 0:
        raise ArtifactError(where, f"manifest counts are not positive: {counts}")
    return Manifest(
        format_version=fmt,
        name=_get(raw, "name", str, where),
        version=_get(raw, "version", int, where),
        algorithm=_get(raw, "algorithm", str, where),
        created_at=_get(raw, "created_at", str, where),
        files=files,
        ann=AnnParams(
            trees=_get(ann, "trees", int, where),
            search_k=_get(ann, "search_k", int, where),
            recall_at_10=float(_get(ann, "recall_at_10", (int, float), where)),
            metric=str(ann.get("metric", "angular")),
            exact_neighbours=int(ann.get("exact_neighbours", 0) or 0),
        ),
        training=dict(raw.get("training") or {}),
        metrics={k: float(v) for k, v in (raw.get("metrics") or {}).items() if isinstance(v, int | float)},
        fold_in={k: float(v) for k, v in (raw.get("fold_in") or {}).items()},
        source=dict(raw.get("source") or {}),
        **counts,
    )


def read(version_dir: pathlib.Path) -> Manifest:
    path = version_dir / layout.MANIFEST
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(version_dir, "no manifest.json (incomplete or not a model version)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(path, f"manifest.json is not valid JSON: {e}") from None
    if not isinstance(raw, dict):
        raise ArtifactError(path, "manifest.json is not a JSON object")
    return parse(raw, version_dir)
