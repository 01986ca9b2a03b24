"""The experiments file: which A/B experiments run, over what share of users, with which arms.

TOML or JSON (by suffix). Parsing is strict: an unknown key, a wrong type or an impossible
value is refused with a message that names the field by its path (`experiments[1].arms[0].weight`),
so a bad file is caught before any worker sees it and the experiments already running keep serving.

```toml
[[experiments]]
name = "feed-als-v2"
salt = "2026-11-feed"      # changing the salt reshuffles users; never reuse one across experiments
share = 0.2                # fraction of users in the experiment; the rest get the default model
arms = [
  { name = "control", model = "posts", weight = 1 },
  { name = "als-v7",  model = "posts", version = 7, weight = 1 },
  { name = "popular", baseline = "popular", weight = 1 },
  { name = "bpr",     model = "posts-bpr", shadow = true },   # scored, never shown
]
```
"""

from __future__ import annotations

import json
import math
import pathlib
import re
import tomllib
from dataclasses import dataclass
from typing import Any

from reco_sidecar.common import bounded_file
from reco_sidecar.common.errors import InvalidArgument

BASELINES = ("popular", "random")
# Matched whole (fullmatch): `$` would also accept a name ending in a newline.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_EXPERIMENTS = 64
MAX_ARMS = 16
MAX_FILE_BYTES = 1 << 20


class ExperimentFileError(InvalidArgument):
    """A refused experiments file; `field` is the path of the offending value."""


@dataclass(frozen=True)
class Arm:
    name: str
    weight: float
    # Exactly one of model / baseline is set.
    model: str | None = None
    version: int | None = None  # None: whatever version the model serves
    baseline: str | None = None
    shadow: bool = False
    # False: this arm answers from the trained vectors, ignoring online updates (an A/B of
    # online learning itself, docs/online.md).
    online: bool = True


@dataclass(frozen=True)
class Experiment:
    name: str
    salt: str
    share: float
    arms: tuple[Arm, ...]

    @property
    def served_arms(self) -> tuple[Arm, ...]:
        return tuple(a for a in self.arms if not a.shadow)

    @property
    def shadow_arms(self) -> tuple[Arm, ...]:
        return tuple(a for a in self.arms if a.shadow)

    def arm(self, name: str) -> Arm | None:
        return next((a for a in self.arms if a.name == name), None)


@dataclass(frozen=True)
class ExperimentSet:
    experiments: tuple[Experiment, ...] = ()

    def get(self, name: str) -> Experiment | None:
        return next((e for e in self.experiments if e.name == name), None)

    def models(self) -> set[str]:
        return {a.model for e in self.experiments for a in e.arms if a.model is not None}


def load(path: pathlib.Path) -> ExperimentSet:
    """Reads and validates an experiments file. Raises ExperimentFileError naming the field."""
    path = pathlib.Path(path)
    return parse(read_text(path), syntax_of(path), source=str(path))


def read_text(path: pathlib.Path) -> str:
    """The file's text, bounded in size before any byte is read; anything but a regular file
    is refused without blocking (the supervisor's loop reads this file at every watch poll)."""
    try:
        return bounded_file.read_text(path, MAX_FILE_BYTES)
    except bounded_file.Unreadable as e:
        raise ExperimentFileError(str(e), field="file") from None


def syntax_of(path: pathlib.Path) -> str:
    return "json" if path.suffix.lower() == ".json" else "toml"


def parse(text: str, syntax: str, *, source: str = "experiments") -> ExperimentSet:
    try:
        raw: Any = json.loads(text) if syntax == "json" else tomllib.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise ExperimentFileError(f"{source}: not valid {syntax.upper()}: {e}", field="file") from None
    root = _table(raw, "(root)")
    _keys(root, "(root)", required={"experiments"}, optional=set())
    items = root["experiments"]
    if not isinstance(items, list):
        raise ExperimentFileError("must be a list of experiments", field="experiments")
    if len(items) > MAX_EXPERIMENTS:
        raise ExperimentFileError(f"at most {MAX_EXPERIMENTS} experiments", field="experiments")
    experiments = tuple(_experiment(item, f"experiments[{i}]") for i, item in enumerate(items))
    _unique([e.name for e in experiments], "experiments", "name")
    _unique([e.salt for e in experiments], "experiments", "salt")
    return ExperimentSet(experiments)


def _experiment(raw: Any, where: str) -> Experiment:
    t = _table(raw, where)
    _keys(t, where, required={"name", "salt", "share", "arms"}, optional=set())
    name = _name(t["name"], f"{where}.name")
    salt = t["salt"]
    if not isinstance(salt, str) or not salt or len(salt) > 256:
        raise ExperimentFileError("must be a non-empty string of at most 256 characters", field=f"{where}.salt")
    share = _number(t["share"], f"{where}.share")
    if not 0.0 < share <= 1.0:
        raise ExperimentFileError(f"must be in (0, 1], got {share}", field=f"{where}.share")
    arms_raw = t["arms"]
    if not isinstance(arms_raw, list) or not arms_raw:
        raise ExperimentFileError("must be a non-empty list of arms", field=f"{where}.arms")
    if len(arms_raw) > MAX_ARMS:
        raise ExperimentFileError(f"at most {MAX_ARMS} arms", field=f"{where}.arms")
    arms = tuple(_arm(a, f"{where}.arms[{j}]") for j, a in enumerate(arms_raw))
    _unique([a.name for a in arms], f"{where}.arms", "name")
    if not any(not a.shadow for a in arms):
        raise ExperimentFileError("needs at least one arm that is not a shadow", field=f"{where}.arms")
    # Each weight is finite, their sum need not be (1e308 + 1e308): an infinite total would send
    # every user to the last arm.
    if not math.isfinite(sum(a.weight for a in arms)):
        raise ExperimentFileError("the weights' sum must be a finite number", field=f"{where}.arms")
    return Experiment(name=name, salt=salt, share=share, arms=arms)


def _arm(raw: Any, where: str) -> Arm:
    t = _table(raw, where)
    _keys(t, where, required={"name"}, optional={"model", "version", "baseline", "weight", "shadow",
                                                       "online"})
    name = _name(t["name"], f"{where}.name")
    shadow = t.get("shadow", False)
    if not isinstance(shadow, bool):
        raise ExperimentFileError("must be true or false", field=f"{where}.shadow")
    online = t.get("online", True)
    if not isinstance(online, bool):
        raise ExperimentFileError("must be true or false", field=f"{where}.online")
    weight = _number(t.get("weight", 1.0), f"{where}.weight")
    if shadow and "weight" in t:
        raise ExperimentFileError("a shadow arm takes no traffic, so it has no weight", field=f"{where}.weight")
    if not shadow and weight <= 0:
        raise ExperimentFileError(f"must be a positive number, got {weight}", field=f"{where}.weight")
    model, baseline = t.get("model"), t.get("baseline")
    if (model is None) == (baseline is None):
        raise ExperimentFileError("needs exactly one of `model` or `baseline`", field=where)
    version: int | None = None
    if model is not None:
        model = _name(model, f"{where}.model")
        if "version" in t:
            v = t["version"]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ExperimentFileError("must be a positive integer", field=f"{where}.version")
            version = v
    else:
        if baseline not in BASELINES:
            raise ExperimentFileError(f"must be one of {', '.join(BASELINES)}, got {baseline!r}",
                                      field=f"{where}.baseline")
        if "version" in t:
            raise ExperimentFileError("only a model arm can pin a version", field=f"{where}.version")
    return Arm(name=name, weight=0.0 if shadow else weight, model=model, version=version,
               baseline=baseline, shadow=shadow, online=online)


def _table(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ExperimentFileError("must be a table/object", field=where)
    return raw


def _keys(t: dict[str, Any], where: str, *, required: set[str], optional: set[str]) -> None:
    for key in t:
        if key not in required | optional:
            raise ExperimentFileError(f"unknown key {key!r}", field=f"{where}.{key}" if where != "(root)" else key)
    for key in sorted(required - set(t)):
        raise ExperimentFileError("is required", field=f"{where}.{key}" if where != "(root)" else key)


def _name(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not _NAME.fullmatch(raw):
        raise ExperimentFileError("must be 1-64 characters of letters, digits, '_', '.', '-'", field=where)
    return raw


def _number(raw: Any, where: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise ExperimentFileError("must be a finite number", field=where)
    return float(raw)


def _unique(values: list[str], where: str, key: str) -> None:
    seen: set[str] = set()
    for i, v in enumerate(values):
        if v in seen:
            raise ExperimentFileError(f"{v!r} is used twice", field=f"{where}[{i}].{key}")
        seen.add(v)
