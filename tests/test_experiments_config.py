"""The experiments file: valid files parse; every kind of bad file is refused naming the field."""

from __future__ import annotations

import json
import pathlib

import pytest

from reco_sidecar.experiments import config
from reco_sidecar.experiments.config import ExperimentFileError

GOOD = """
[[experiments]]
name = "feed"
salt = "s1"
share = 0.5
arms = [
  { name = "control", model = "posts" },
  { name = "v7", model = "posts", version = 7, weight = 3 },
  { name = "pop", baseline = "popular", weight = 0.5 },
  { name = "bpr", model = "posts-bpr", shadow = true },
]

[[experiments]]
name = "worlds"
salt = "s2"
share = 1
arms = [{ name = "random", baseline = "random" }]
"""


def test_a_good_file_parses(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "experiments.toml"
    path.write_text(GOOD)
    parsed = config.load(path)
    feed = parsed.get("feed")
    assert feed is not None and feed.share == 0.5
    assert [a.name for a in feed.served_arms] == ["control", "v7", "pop"]
    assert [a.name for a in feed.shadow_arms] == ["bpr"]
    assert feed.arm("v7") == config.Arm(name="v7", weight=3.0, model="posts", version=7)
    assert parsed.models() == {"posts", "posts-bpr"}
    # The same content as JSON gives the same set.
    as_json = tmp_path / "experiments.json"
    as_json.write_text(json.dumps({"experiments": [
        {"name": e.name, "salt": e.salt, "share": e.share, "arms": [
            {k: v for k, v in {"name": a.name, "model": a.model, "version": a.version, "baseline": a.baseline,
                               "shadow": a.shadow or None, "weight": None if a.shadow else a.weight}.items()
             if v is not None} for a in e.arms]}
        for e in parsed.experiments]}))
    assert config.load(as_json) == parsed


BAD = [
    ("experiments = 3", "experiments"),
    ("[[experiments]]\nname='a'\nsalt='s'\nshare=0.5", "experiments[0].arms"),
    ("[[experiments]]\nname='a'\nsalt='s'\nshare=1.5\narms=[{name='x', model='m'}]", "experiments[0].share"),
    ("[[experiments]]\nname='a'\nsalt='s'\nshare='half'\narms=[{name='x', model='m'}]", "experiments[0].share"),
    ("[[experiments]]\nname='a b'\nsalt='s'\nshare=1\narms=[{name='x', model='m'}]", "experiments[0].name"),
    ("[[experiments]]\nname='a'\nsalt=''\nshare=1\narms=[{name='x', model='m'}]", "experiments[0].salt"),
    ("[[experiments]]\nname='a'\nsalt='s'\nshare=1\narms=[{name='x', model='m', weight=0}]",
     "experiments[0].arms[0].weight"),
    ("[[experiments]]\nname='a'\nsalt='s'\nshare=1\narms=[{name='x', model='m', weight=true}]",
     "experiments[0].arms[0].weight"),
    ("[[experiments]]\nname='a'\nsalt='s'\nshare=1\narms=[{name='x'}]", "experiments[0].arms[0]"),
    ("[[experiments]]\nname='a'\nsalt='s'\nshare=1\narms=[{name='x', model='m', baseline='popular'}]",
     "experiments[0].arms[0]"),
    ("[[experiments]]\nname='a'\nsalt='s'\nshare=1\narms=[{name='x', baseline='best'}]",
     "experiments[0].arms[0].baseline"),
    ("[[experiments]]\nname='a'\nsalt='s'\nshare=1\narms=[{name='x', model='m', version=0}]",
     "experiments[0].arms[0].version"),
    ("[[experiments]]\nname='a'\nsalt='s'\nshare=1\narms=[{name='x', model='m', colour='red'}]",
     "experiments[0].arms[0].colour"),
    ("[[experiments]]\nname='a'\nsalt='s'\nshare=1\narms=[{name='x', model='m', shadow=true}]",
     "experiments[0].arms"),
    ("[[experiments]]\nname='a'\nsalt='s'\nshare=1\narms=[{name='x', model='m'}, {name='x', model='n'}]",
     "experiments[0].arms[1].name"),
    ("[[experiments]]\nname='a'\nsalt='s'\nshare=1\narms=[{name='x', model='m'}]\n"
     "[[experiments]]\nname='b'\nsalt='s'\nshare=1\narms=[{name='x', model='m'}]", "experiments[1].salt"),
    ("[[experiments]]\nname='a'\nsalt='s'\nshare=1\narms=[{name='x', model='m', weight=1e308}, "
     "{name='y', model='m', weight=1e308}]", "experiments[0].arms"),
    ("[[experiments]]\nname='a\\n'\nsalt='s'\nshare=1\narms=[{name='x', model='m'}]", "experiments[0].name"),
    ("this is not toml", "file"),
]


@pytest.mark.parametrize(("text", "field"), BAD)
def test_a_bad_file_is_refused_naming_the_field(tmp_path: pathlib.Path, text: str, field: str) -> None:
    path = tmp_path / "experiments.toml"
    path.write_text(text)
    with pytest.raises(ExperimentFileError) as e:
        config.load(path)
    assert e.value.field == field, str(e.value)


def test_deeply_nested_json_is_refused_not_a_crash(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "experiments.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ExperimentFileError) as e:
        config.load(path)
    assert e.value.field == "file"
