"""The manifest: what a version directory claims to hold, parsed and checked field by field.

Every field's type and range is checked and a refusal names the field (`fold_in.alpha`,
`ann.exact_neighbours`, `files["x.npy"].bytes`), so any JSON at all yields either a valid
Manifest or an ArtifactError: never a TypeError, a RecursionError or a silently dropped value.
"""

from __future__ import annotations

import json
import math
import pathlib
import re
from dataclasses import dataclass, field
from typing import Any, NoReturn

from reco_sidecar.artifact import layout
from reco_sidecar.common.errors import ArtifactError
from reco_sidecar.engine import eventtypes, objective
from reco_sidecar.engine.eventtypes import EventType
from reco_sidecar.engine.objective import Objective

# A manifest lists a few dozen files and some training notes; anything larger is not one, and
# reading it whole would let a huge file stall whoever parses it.
MAX_MANIFEST_BYTES = 4 << 20
# Nesting deeper than this in free-form sections (training, source) is refused: whoever walks
# the manifest later (logs, status replies) must not meet a recursion limit.
MAX_DEPTH = 32
# Item rows are stored as int32 (seen items, neighbours); user rows fit the same bound.
MAX_ROWS = 2**31 - 1
MAX_FACTORS = 1 << 16
# Larger than any disk; keeps every product of counts inside int64.
MAX_BYTES = 2**53
_SHA256 = re.compile(r"[0-9a-f]{64}")
# An event type's weight, either sign; bounded so that alpha x weight stays a sane confidence.
MAX_TYPE_WEIGHT = 1e6
MAX_EVENT_TYPES = 1024


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
    # Format 2: the interaction types and weights training used, by name (empty: not recorded).
    event_types: dict[str, EventType] = field(default_factory=dict)
    # Format 2: the loss the factors were fitted to (None: not recorded, see `solve_objective`).
    objective: Objective | None = None
    # Format 2: Unix time the training data ends (None: not recorded).
    as_of: float | None = None

    def solve_objective(self) -> Objective:
        """The recorded objective; for older versions implicit's form with fold_in's parameters."""
        if self.objective is not None:
            return self.objective
        return Objective(objective.IMPLICIT, alpha=self.fold_in.get("alpha", 1.0),
                         regularization=self.fold_in.get("regularization", 0.1))

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
            "event_types": {k: {"weight": v.weight, "excludes": v.excludes}
                            for k, v in sorted(self.event_types.items())},
            "objective": None if self.objective is None else self.objective.as_json(),
            "as_of": self.as_of,
        }


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class _Fields:
    """Typed access to one JSON object; every refusal names the field by its full path."""

    def __init__(self, raw: object, path: str, where: object) -> None:
        self.where = where
        self.path = path
        if not isinstance(raw, dict):
            self.fail(path or "manifest", f"must be an object, got {_kind(raw)}")
        self.raw: dict[str, Any] = raw

    def name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, name: str, problem: str) -> NoReturn:
        raise ArtifactError(self.where, f"manifest field '{name}' {problem}")

    def get(self, key: str, default: object = ...) -> object:
        if key not in self.raw:
            if default is ...:
                raise ArtifactError(self.where, f"manifest lacks '{self.name(key)}'")
            return default
        return self.raw[key]

    def integer(self, key: str, low: int, high: int, default: object = ...) -> int:
        value = self.get(key, default)
        if type(value) is not int:
            self.fail(self.name(key), f"must be an integer, got {_kind(value)}")
        if not low <= value <= high:
            self.fail(self.name(key), f"must be between {low} and {high}, got {value}")
        return value

    def number(self, key: str, low: float, high: float, default: object = ..., *, finite: bool = True) -> float:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(self.name(key), f"must be a number, got {_kind(value)}")
        try:
            number = float(value)
        except OverflowError:  # an integer beyond float range
            self.fail(self.name(key), f"must be a finite number between {low} and {high}")
        if not finite and not math.isfinite(number):
            return number
        if not (math.isfinite(number) and low <= number <= high):
            self.fail(self.name(key), f"must be a finite number between {low} and {high}, got {value}")
        return number

    def string(self, key: str, default: object = ..., *, nonempty: bool = False) -> str:
        value = self.get(key, default)
        if not isinstance(value, str):
            self.fail(self.name(key), f"must be a string, got {_kind(value)}")
        if nonempty and not value:
            self.fail(self.name(key), "must not be empty")
        return value

    def boolean(self, key: str, default: object = ...) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            self.fail(self.name(key), f"must be true or false, got {_kind(value)}")
        return value

    def obj(self, key: str, default: object = ...) -> _Fields:
        return _Fields(self.get(key, default), self.name(key), self.where)


def _depth_ok(value: object) -> bool:
    """Whether `value` nests at most MAX_DEPTH containers deep (iterative: no recursion)."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return True


def _free_form(f: _Fields, key: str) -> dict[str, Any]:
    """An optional JSON object whose content the sidecar only reports (training, source)."""
    section = f.obj(key, {})
    if not _depth_ok(section.raw):
        section.fail(section.path, f"nests deeper than {MAX_DEPTH} levels")
    return dict(section.raw)


def _numbers(f: _Fields, key: str, low: float, high: float, *, finite: bool = True) -> dict[str, float]:
    section = f.obj(key, {})
    return {k: section.number(k, low, high, finite=finite) for k in section.raw}


def _files(f: _Fields) -> dict[str, FileEntry]:
    section = f.obj("files")
    files: dict[str, FileEntry] = {}
    for name, entry_raw in section.raw.items():
        label = f'files["{name}"]'
        if not name or "/" in name or "\0" in name or name.startswith(".") or name == layout.MANIFEST:
            section.fail(label, "names a file outside the version directory (or the manifest itself)")
        entry = _Fields(entry_raw, label, f.where)
        digest = entry.string("sha256")
        if not _SHA256.fullmatch(digest):
            entry.fail(entry.name("sha256"), "must be 64 lowercase hex digits")
        files[name] = FileEntry(digest, entry.integer("bytes", 0, MAX_BYTES))
    missing = [name for name in layout.REQUIRED_FILES if name not in files]
    if missing:
        raise ArtifactError(f.where, f"manifest lists no checksum for {', '.join(missing)}")
    for group in layout.GROUPS:
        together = [name for name in group if name in files]
        if together and len(together) != len(group):
            raise ArtifactError(f.where, f"manifest lists {', '.join(together)} without the rest of "
                                f"{', '.join(group)} (they come together)")
    return files


def _ann(f: _Fields, item_count: int) -> AnnParams:
    ann = f.obj("ann")
    library = ann.string("library", "annoy")
    if library != "annoy":
        ann.fail(ann.name("library"), f"must be 'annoy', got {library!r}")
    metric = ann.string("metric", "angular")
    if metric != "angular":
        ann.fail(ann.name("metric"), f"must be 'angular', got {metric!r}")
    return AnnParams(
        trees=ann.integer("trees", 1, 1 << 20),
        # annoy's own default is -1 (trees × n)
        search_k=ann.integer("search_k", -1, 2**62),
        recall_at_10=ann.number("recall_at_10", 0.0, 1.0),
        metric=metric,
        exact_neighbours=ann.integer("exact_neighbours", 0, max(0, item_count - 1), 0),
    )


def _event_types(f: _Fields) -> dict[str, EventType]:
    section = f.obj("event_types", {})
    if len(section.raw) > MAX_EVENT_TYPES:
        section.fail(section.path, f"lists more than {MAX_EVENT_TYPES} types")
    out: dict[str, EventType] = {}
    for name in section.raw:
        label = f'event_types["{name}"]'
        if not name or len(name.encode("utf-8", "surrogatepass")) > eventtypes.MAX_NAME_BYTES:
            section.fail(label, f"needs a name of 1 to {eventtypes.MAX_NAME_BYTES} bytes")
        entry = _Fields(section.raw[name], label, f.where)
        weight = entry.number("weight", -MAX_TYPE_WEIGHT, MAX_TYPE_WEIGHT)
        excludes = entry.boolean("excludes", eventtypes.default_excludes(name, weight))
        if weight == 0 and excludes:
            # A shown type (an impression) is not a consumption: it never leaves the item out.
            entry.fail(entry.name("excludes"), "must be false for a shown type (weight 0)")
        out[name] = EventType(weight, excludes)
    return out


def _objective(f: _Fields) -> Objective | None:
    if f.get("objective", None) is None:
        return None
    section = f.obj("objective")
    form = section.string("form")
    if form not in objective.FORMS:
        section.fail(section.name("form"), f"must be one of {', '.join(objective.FORMS)}, got {form!r}")
    return Objective(form, alpha=section.number("alpha", 0.0, 1e12),
                     regularization=section.number("regularization", 0.0, 1e12))


def _as_of(f: _Fields) -> float | None:
    if f.get("as_of", None) is None:
        return None
    return f.number("as_of", 0.0, 1e11)


def parse(raw: object, where: object) -> Manifest:
    f = _Fields(raw, "", where)
    fmt = f.integer("format_version", 0, 2**31)
    if fmt not in layout.READABLE_FORMATS:
        raise ArtifactError(where, f"format_version {fmt} is not supported (expected one of "
                            f"{', '.join(map(str, layout.READABLE_FORMATS))})")
    item_count = f.integer("item_count", 1, MAX_ROWS)
    return Manifest(
        format_version=fmt,
        name=f.string("name", nonempty=True),
        version=f.integer("version", 1, 2**63 - 1),
        algorithm=f.string("algorithm"),
        factors=f.integer("factors", 1, MAX_FACTORS),
        user_count=f.integer("user_count", 0, MAX_ROWS),
        item_count=item_count,
        seen_count=f.integer("seen_count", 0, 2**62),
        created_at=f.string("created_at"),
        files=_files(f),
        ann=_ann(f, item_count),
        training=_free_form(f, "training"),
        # reported only; an evaluation without held-out users may have written NaN
        metrics=_numbers(f, "metrics", -math.inf, math.inf, finite=False),
        fold_in=_numbers(f, "fold_in", 0.0, 1e12),
        source=_free_form(f, "source"),
        event_types=_event_types(f),
        objective=_objective(f),
        as_of=_as_of(f),
    )


def parse_bytes(data: bytes, where: object, path: object) -> Manifest:
    """Parses manifest.json's bytes; `path` is the file named when they are not JSON."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ArtifactError(path, f"manifest.json is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        raw = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError and over-long integers
        raise ArtifactError(path, f"manifest.json is not valid JSON: {e}") from None
    except RecursionError:
        raise ArtifactError(path, "manifest.json is not valid JSON: nested too deeply") from None
    if not isinstance(raw, dict):
        raise ArtifactError(path, "manifest.json is not a JSON object")
    return parse(raw, where)


def read(version_dir: pathlib.Path) -> Manifest:
    path = version_dir / layout.MANIFEST
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise ArtifactError(version_dir, "no manifest.json (incomplete or not a model version)") from None
    except OSError as e:
        raise ArtifactError(path, f"manifest.json cannot be read: {e}") from None
    return parse_bytes(data, version_dir, path)
