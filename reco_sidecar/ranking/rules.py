"""The rules file: how the ranking stage re-ranks each model's answers, per experiment arm.

TOML or JSON (by suffix), validated like the experiments file: an unknown key, a wrong type or
an impossible value is refused with a message naming the field by its path
(`rules[0].diversity.cap`), and a refused file changes nothing anywhere.

```toml
hide = ["i0000013"]              # never returned by any model, arm or RPC

[[rules]]
model = "demo"                   # every answer of this model...
[rules.diversity]
mmr_lambda = 0.2                 # 0: the model's order; 1: only dissimilarity counts
cap_field = "creator"            # an item metadata field ("category" or a column of the items CSV)
cap = 2                          # at most 2 items per value in any 10 consecutive positions
window = 10
[rules.freshness]
max_age_days = 7                 # items created less than 7 days ago...
boost = 1.5                      # ...have their score multiplied by 1.5
[[rules.pin]]
item = "i0000042"
position = 1
[[rules.boost]]
item = "i0000007"
factor = 0.5                     # < 1 buries

[[rules]]
model = "demo"                   # ...except the answers of this experiment arm
experiment = "feed-diversity"
arm = "plain"
```
"""

from __future__ import annotations

import json
import math
import pathlib
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from reco_sidecar.common import bounded_file
from reco_sidecar.common.errors import InvalidArgument

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_RULE_SETS = 256
MAX_ITEMS = 10_000  # pins, boosts or hidden items in one list
MAX_POSITION = 1000
MAX_CANDIDATES = 100_000
MAX_FILE_BYTES = 1 << 20


class RulesFileError(InvalidArgument):
    """A refused rules file; `field` is the path of the offending value."""


@dataclass(frozen=True)
class Diversity:
    mmr_lambda: float = 0.0
    cap_field: str | None = None
    cap: int = 0  # 0: no cap
    window: int = 10


@dataclass(frozen=True)
class Freshness:
    max_age_seconds: float
    boost: float


@dataclass(frozen=True)
class Impressions:
    """An item shown to the user `max_shown` times or more without an engagement since has its
    score multiplied by `factor` (< 1): it sinks below what the user has not been shown."""

    max_shown: int
    factor: float


@dataclass(frozen=True)
class Pin:
    item: str
    position: int  # 1-based, in the whole list (offset included)


@dataclass(frozen=True)
class Boost:
    item: str
    factor: float


@dataclass(frozen=True)
class RuleSet:
    model: str
    experiment: str = ""
    arm: str = ""
    diversity: Diversity = field(default_factory=Diversity)
    freshness: Freshness | None = None
    pins: tuple[Pin, ...] = ()
    boosts: tuple[Boost, ...] = ()
    impressions: Impressions | None = None
    # MMR's pool: each position is chosen among this many best remaining items.
    candidates: int = 50
    # How far retrieval may grow to make a capped or boosted list exact (docs/ranking.md).
    max_candidates: int = 5000
    # The file names a rule for the stage (even one that changes nothing, such as MMR with
    # lambda 0); without one, the model's own top-N is served and only hiding applies.
    staged: bool = False

    @property
    def reorders(self) -> bool:
        return self.staged


@dataclass(frozen=True)
class RulesFile:
    rule_sets: tuple[RuleSet, ...] = ()
    hide: tuple[str, ...] = ()
    text: str = ""
    syntax: str = "toml"

    @staticmethod
    def empty() -> RulesFile:
        return RulesFile()

    def find(self, model: str, experiment: str = "", arm: str = "") -> RuleSet | None:
        """The arm's own rule set, else the model's (no experiment named), else None."""
        fallback = None
        for r in self.rule_sets:
            if r.model != model:
                continue
            if arm and r.experiment == experiment and r.arm == arm:
                return r
            if not r.experiment and fallback is None:
                fallback = r
        return fallback


def load(path: pathlib.Path) -> RulesFile:
    """Reads and validates a rules file. Raises RulesFileError naming the field."""
    path = pathlib.Path(path)
    text = read_text(path)
    return parse(text, "json" if path.suffix.lower() == ".json" else "toml", source=str(path))


def read_text(path: pathlib.Path) -> str:
    """The file's text, bounded before any byte is read; a FIFO or device in its place is
    refused without blocking (the supervisor's loop reads it at every watch poll)."""
    try:
        return bounded_file.read_text(path, MAX_FILE_BYTES)
    except bounded_file.Unreadable as e:
        raise RulesFileError(str(e), field="file") from None


def parse(text: str, syntax: str, *, source: str = "rules") -> RulesFile:
    try:
        raw: Any = json.loads(text) if syntax == "json" else tomllib.loads(text)
    except (ValueError, RecursionError) as e:
        raise RulesFileError(f"{source}: not valid {syntax.upper()}: {e}", field="file") from None
    root = _table(raw, "(root)")
    _keys(root, "(root)", required=set(), optional={"rules", "hide"})
    items = root.get("rules", [])
    if not isinstance(items, list):
        raise RulesFileError("must be a list of rule sets", field="rules")
    if len(items) > MAX_RULE_SETS:
        raise RulesFileError(f"at most {MAX_RULE_SETS} rule sets", field="rules")
    sets = tuple(_rule_set(item, f"rules[{i}]") for i, item in enumerate(items))
    seen: set[tuple[str, str, str]] = set()
    for i, r in enumerate(sets):
        key = (r.model, r.experiment, r.arm)
        if key in seen:
            raise RulesFileError(f"a second rule set for model {r.model!r}"
                                 + (f", arm {r.experiment}/{r.arm}" if r.arm else ""), field=f"rules[{i}]")
        seen.add(key)
    hide = _items(root.get("hide", []), "hide")
    return RulesFile(sets, hide, text, syntax)


def _rule_set(raw: Any, where: str) -> RuleSet:
    t = _table(raw, where)
    _keys(t, where, required={"model"}, optional={"experiment", "arm", "diversity", "freshness", "pin", "boost",
                                                  "impressions", "candidates", "max_candidates"})
    model = _name(t["model"], f"{where}.model")
    experiment = _name(t["experiment"], f"{where}.experiment") if "experiment" in t else ""
    arm = _name(t["arm"], f"{where}.arm") if "arm" in t else ""
    if bool(experiment) != bool(arm):
        missing = "arm" if experiment else "experiment"
        raise RulesFileError("`experiment` and `arm` go together", field=f"{where}.{missing}")
    candidates = _int(t.get("candidates", 50), f"{where}.candidates", 1, MAX_CANDIDATES)
    max_candidates = _int(t.get("max_candidates", 5000), f"{where}.max_candidates", candidates, MAX_CANDIDATES)
    diversity = _diversity(t["diversity"], f"{where}.diversity") if "diversity" in t else Diversity()
    freshness = _freshness(t["freshness"], f"{where}.freshness") if "freshness" in t else None
    pins = tuple(_pin(p, f"{where}.pin[{i}]") for i, p in enumerate(_list(t.get("pin", []), f"{where}.pin")))
    positions: set[int] = set()
    for i, p in enumerate(pins):
        if p.position in positions:
            raise RulesFileError(f"position {p.position} is pinned twice", field=f"{where}.pin[{i}].position")
        positions.add(p.position)
    _unique([p.item for p in pins], f"{where}.pin", "item")
    boosts = tuple(_boost(b, f"{where}.boost[{i}]") for i, b in enumerate(_list(t.get("boost", []), f"{where}.boost")))
    _unique([b.item for b in boosts], f"{where}.boost", "item")
    impressions = _impressions(t["impressions"], f"{where}.impressions") if "impressions" in t else None
    staged = any(key in t for key in ("diversity", "freshness", "pin", "boost", "impressions"))
    return RuleSet(model, experiment, arm, diversity, freshness, pins, boosts, impressions, candidates,
                   max_candidates, staged)


def _diversity(raw: Any, where: str) -> Diversity:
    t = _table(raw, where)
    _keys(t, where, required=set(), optional={"mmr_lambda", "cap_field", "cap", "window"})
    lam = _number(t.get("mmr_lambda", 0.0), f"{where}.mmr_lambda")
    if not 0.0 <= lam <= 1.0:
        raise RulesFileError(f"must be in [0, 1], got {lam}", field=f"{where}.mmr_lambda")
    cap_field = t.get("cap_field")
    if cap_field is not None:
        cap_field = _name(cap_field, f"{where}.cap_field")
    cap = _int(t.get("cap", 0), f"{where}.cap", 0, MAX_POSITION)
    if (cap_field is None) != (cap == 0):
        raise RulesFileError("`cap_field` and a positive `cap` go together",
                             field=f"{where}.{'cap' if cap_field else 'cap_field'}")
    window = _int(t.get("window", 10), f"{where}.window", 1, MAX_POSITION)
    return Diversity(lam, cap_field, cap, window)


def _freshness(raw: Any, where: str) -> Freshness:
    t = _table(raw, where)
    _keys(t, where, required={"max_age_days", "boost"}, optional=set())
    age = _number(t["max_age_days"], f"{where}.max_age_days")
    if age <= 0:
        raise RulesFileError(f"must be positive, got {age}", field=f"{where}.max_age_days")
    boost = _factor(t["boost"], f"{where}.boost")
    return Freshness(age * 86_400.0, boost)


def _impressions(raw: Any, where: str) -> Impressions:
    t = _table(raw, where)
    _keys(t, where, required={"max_shown", "factor"}, optional=set())
    max_shown = _int(t["max_shown"], f"{where}.max_shown", 1, 1_000_000)
    factor = _number(t["factor"], f"{where}.factor")
    if not 1e-6 <= factor < 1.0:
        raise RulesFileError(f"must be in [1e-6, 1) so that the item sinks, got {factor}", field=f"{where}.factor")
    return Impressions(max_shown, factor)


def _pin(raw: Any, where: str) -> Pin:
    t = _table(raw, where)
    _keys(t, where, required={"item", "position"}, optional=set())
    return Pin(_item(t["item"], f"{where}.item"), _int(t["position"], f"{where}.position", 1, MAX_POSITION))


def _boost(raw: Any, where: str) -> Boost:
    t = _table(raw, where)
    _keys(t, where, required={"item", "factor"}, optional=set())
    return Boost(_item(t["item"], f"{where}.item"), _factor(t["factor"], f"{where}.factor"))


def _factor(raw: Any, where: str) -> float:
    v = _number(raw, where)
    if not 1e-6 <= v <= 1e6:
        raise RulesFileError(f"must be a positive factor in [1e-6, 1e6], got {v}", field=where)
    return v


def _items(raw: Any, where: str) -> tuple[str, ...]:
    values = _list(raw, where)
    if len(values) > MAX_ITEMS:
        raise RulesFileError(f"at most {MAX_ITEMS} items", field=where)
    return tuple(_item(v, f"{where}[{i}]") for i, v in enumerate(values))


def _item(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not raw or len(raw.encode()) > 512:
        raise RulesFileError("must be an item id of 1-512 bytes", field=where)
    return raw


def _list(raw: Any, where: str) -> list[Any]:
    if not isinstance(raw, list):
        raise RulesFileError("must be a list", field=where)
    if len(raw) > MAX_ITEMS:
        raise RulesFileError(f"at most {MAX_ITEMS} entries", field=where)
    return raw


def _table(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise RulesFileError("must be a table/object", field=where)
    return raw


def _keys(t: dict[str, Any], where: str, *, required: set[str], optional: set[str]) -> None:
    for key in t:
        if key not in required | optional:
            raise RulesFileError(f"unknown key {key!r}", field=f"{where}.{key}" if where != "(root)" else key)
    for key in sorted(required - set(t)):
        raise RulesFileError("is required", field=f"{where}.{key}" if where != "(root)" else key)


def _name(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not _NAME.match(raw):
        raise RulesFileError("must be 1-64 characters of letters, digits, '_', '.', '-'", field=where)
    return raw


def _number(raw: Any, where: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise RulesFileError("must be a finite number", field=where)
    return float(raw)


def _int(raw: Any, where: str, low: int, high: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        raise RulesFileError(f"must be an integer in [{low}, {high}]", field=where)
    return raw


def _unique(values: list[str], where: str, key: str) -> None:
    seen: set[str] = set()
    for i, v in enumerate(values):
        if v in seen:
            raise RulesFileError(f"{v!r} is listed twice", field=f"{where}[{i}].{key}")
        seen.add(v)
