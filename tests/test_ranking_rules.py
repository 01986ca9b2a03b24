"""The rules file's validation: every refusal names the field by its path; a good file parses
whole, in TOML and in JSON alike; rule sets resolve per model and per experiment arm."""

from __future__ import annotations

import json
import pathlib

import pytest

from reco_sidecar.ranking import rules
from reco_sidecar.ranking.rules import RulesFileError

GOOD = """
hide = ["i0000013"]
[[rules]]
model = "demo"
candidates = 50
[rules.diversity]
mmr_lambda = 0.2
cap_field = "creator"
cap = 2
[rules.freshness]
max_age_days = 7
boost = 1.5
[rules.impressions]
max_shown = 3
factor = 0.25
[[rules.pin]]
item = "i0000042"
position = 1
[[rules.boost]]
item = "i0000007"
factor = 0.5

[[rules]]
model = "demo"
experiment = "feed"
arm = "plain"
"""


def test_a_good_file_parses_the_same_from_toml_and_json(tmp_path: pathlib.Path) -> None:
    import tomllib

    toml_path, json_path = tmp_path / "r.toml", tmp_path / "r.json"
    toml_path.write_text(GOOD)
    json_path.write_text(json.dumps(tomllib.loads(GOOD)))
    a, b = rules.load(toml_path), rules.load(json_path)
    assert a.rule_sets == b.rule_sets and a.hide == b.hide == ("i0000013",)
    main, arm = a.rule_sets
    assert main.diversity == rules.Diversity(0.2, "creator", 2, 10)
    assert main.freshness == rules.Freshness(7 * 86_400.0, 1.5)
    assert main.impressions == rules.Impressions(3, 0.25) and arm.impressions is None
    assert main.pins == (rules.Pin("i0000042", 1),) and main.boosts == (rules.Boost("i0000007", 0.5),)
    assert main.reorders and not arm.reorders  # the arm's set names no rule: the model's own order
    assert a.find("demo") is main and a.find("demo", "feed", "plain") is arm
    assert a.find("demo", "feed", "other") is main and a.find("other") is None


@pytest.mark.parametrize(("change", "field"), [
    (("cap = 2", "cap = -1"), "rules[0].diversity.cap"),
    (("cap = 2", "cap = 2.5"), "rules[0].diversity.cap"),
    (("mmr_lambda = 0.2", "mmr_lambda = 1.5"), "rules[0].diversity.mmr_lambda"),
    (('cap_field = "creator"\n', ""), "rules[0].diversity.cap_field"),
    (("boost = 1.5", "boost = 0"), "rules[0].freshness.boost"),
    (("max_age_days = 7", "max_age_days = -7"), "rules[0].freshness.max_age_days"),
    (("position = 1", "position = 0"), "rules[0].pin[0].position"),
    (("factor = 0.5", 'factor = "x"'), "rules[0].boost[0].factor"),
    (('item = "i0000007"', 'item = ""'), "rules[0].boost[0].item"),
    (("candidates = 50", "candidates = 50\ncolour = 1"), "rules[0].colour"),
    (('arm = "plain"', ""), "rules[1].arm"),
    (('experiment = "feed"\narm = "plain"', ""), "rules[1]"),
    (('hide = ["i0000013"]', "hide = [3]"), "hide[0]"),
    (('hide = ["i0000013"]', 'hide = "i0000013"'), "hide"),
    (("[[rules]]\nmodel = \"demo\"\ncandidates", "[[rules]]\nmodel = \"no such/name\"\ncandidates"),
     "rules[0].model"),
    (("candidates = 50", "candidates = 50\nmax_candidates = 10"), "rules[0].max_candidates"),
    (("factor = 0.5", "factor = 0.5\n[[rules.pin]]\nitem = \"i1\"\nposition = 1"),
     "rules[0].pin[1].position"),
    (("[rules.diversity]", "[rules.diversity\n"), "file"),
    (("max_shown = 3", "max_shown = 0"), "rules[0].impressions.max_shown"),
    (("max_shown = 3", "max_shown = 2.5"), "rules[0].impressions.max_shown"),
    (("factor = 0.25", "factor = 1.0"), "rules[0].impressions.factor"),  # must sink
    (("factor = 0.25", "factor = 0"), "rules[0].impressions.factor"),
    (("max_shown = 3\n", ""), "rules[0].impressions.max_shown"),
    (("max_shown = 3", "max_shown = 3\nafter = 2"), "rules[0].impressions.after"),
])
def test_a_bad_value_is_refused_naming_its_field(change: tuple[str, str], field: str) -> None:
    old, new = change
    assert old in GOOD
    with pytest.raises(RulesFileError) as e:
        rules.parse(GOOD.replace(old, new, 1), "toml")
    assert e.value.field == field


def test_an_unreadable_or_huge_file_is_refused(tmp_path: pathlib.Path) -> None:
    with pytest.raises(RulesFileError) as e:
        rules.load(tmp_path / "missing.toml")
    assert e.value.field == "file"
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"hide": ["x" * 500] * 3000}))
    with pytest.raises(RulesFileError) as e:
        rules.load(big)
    assert e.value.field == "file"
