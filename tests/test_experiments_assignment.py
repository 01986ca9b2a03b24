"""Assignment is a pure function of (salt, user id): shares within binomial bounds,
independent between salts, overridable only to arms that exist."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from reco_sidecar.common.errors import InvalidArgument
from reco_sidecar.experiments import assignment, config

N = 100_000
FILE = config.parse("""
[[experiments]]
name = "feed"
salt = "feed-2026"
share = 0.3
arms = [
  { name = "a", model = "posts", weight = 1 },
  { name = "b", model = "posts", version = 2, weight = 2 },
  { name = "pop", baseline = "popular", weight = 1 },
  { name = "shadow", model = "other", shadow = true },
]

[[experiments]]
name = "other"
salt = "other-2026"
share = 0.5
arms = [{ name = "x", model = "posts" }, { name = "y", baseline = "random" }]
""", "toml")
FEED = FILE.experiments[0]
IDS = [f"u{i:07d}" for i in range(N)]


def within_binomial(count: int, n: int, p: float, z: float = 5.0) -> bool:
    """|count − np| ≤ z σ: a false alarm at z = 5 has odds of about 1 in 3.5 million."""
    return abs(count - n * p) <= z * math.sqrt(n * p * (1 - p))


def test_shares_over_100k_ids_fall_within_binomial_bounds() -> None:
    arms = [assignment.assign(FEED, u) for u in IDS]
    inside = [a for a in arms if a is not None]
    assert within_binomial(len(inside), N, 0.3)
    for name, weight in (("a", 1), ("b", 2), ("pop", 1)):
        count = sum(1 for a in inside if a.name == name)
        assert within_binomial(count, len(inside), weight / 4), (name, count)
    assert all(not a.shadow for a in inside)


def test_experiments_with_different_salts_are_independent() -> None:
    other = FILE.experiments[1]
    both = sum(1 for u in IDS if assignment.assign(FEED, u) is not None and assignment.assign(other, u) is not None)
    assert within_binomial(both, N, 0.3 * 0.5)


def test_assignment_is_the_same_in_another_process() -> None:
    # No per-process state (hash seeds, worker ids): a fresh interpreter agrees on every id.
    sample = IDS[:2000]
    here = [getattr(assignment.assign(FEED, u), "name", "-") for u in sample]
    code = (
        "import sys\nfrom reco_sidecar.experiments import assignment, config\n"
        "from tests.test_experiments_assignment import FEED, IDS\n"
        "print(','.join(getattr(assignment.assign(FEED, u), 'name', '-') for u in IDS[:2000]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "12345", "PATH": ""}, cwd=".").stdout.strip()
    assert out.split(",") == here


def test_resolve_picks_the_first_experiment_holding_the_user_and_honours_overrides() -> None:
    for u in IDS[:500]:
        got = assignment.resolve(FILE, u)
        expected = assignment.assign(FEED, u) or assignment.assign(FILE.experiments[1], u)
        assert (got.arm if got else None) == expected
    forced = assignment.resolve(FILE, "anyone", experiment="feed", arm="pop")
    assert forced is not None and forced.arm.baseline == "popular" and forced.overridden
    with pytest.raises(InvalidArgument) as e:
        assignment.resolve(FILE, "anyone", experiment="feed", arm="shadow")
    assert e.value.field == "arm"
    with pytest.raises(InvalidArgument) as e:
        assignment.resolve(FILE, "anyone", experiment="nope")
    assert e.value.field == "experiment"
    with pytest.raises(InvalidArgument) as e:
        assignment.resolve(FILE, "anyone", arm="a")
    assert e.value.field == "arm"
