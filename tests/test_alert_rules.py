"""The alert rules (deploy/prometheus/rules.yml) as Prometheus's own tool sees them: valid,
and passing their unit tests on synthetic series, each alert shown both firing and silent."""

from __future__ import annotations

import pathlib
import re
import subprocess
from typing import Any

import pytest
import yaml

from harness.paths import ROOT
from harness.prometheus import promtool_binary
from tests.support.requires import require

RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "rules_test.yml"
OPERATIONS = ROOT / "docs" / "operations.md"
METRIC = re.compile(r"\b(reco_[a-z_]+)\b")
HISTOGRAM_SUFFIX = re.compile(r"_(bucket|sum|count)$")


@pytest.fixture(scope="module")
def promtool() -> str:
    path = promtool_binary()
    require(path is not None, "promtool (Debian's prometheus package)")
    assert path is not None
    return path


def rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def test_promtool_finds_every_rule_valid(promtool: str) -> None:
    done = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


def test_promtool_unit_tests_of_the_rules_pass(promtool: str) -> None:
    done = subprocess.run([promtool, "test", "rules", str(RULES_TEST)], capture_output=True, text=True,
                          timeout=120, cwd=RULES_TEST.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_fails_a_rule_whose_threshold_moved(promtool: str, tmp_path: pathlib.Path) -> None:
    # The unit tests hold the thresholds: an error ratio alert at 3 % instead of 1 % fails them.
    moved = RULES.read_text().replace("> 0.01\n", "> 0.03\n", 1)
    assert moved != RULES.read_text()
    (tmp_path / "rules.yml").write_text(moved)
    (tmp_path / "rules_test.yml").write_text(RULES_TEST.read_text())
    done = subprocess.run([promtool, "test", "rules", "rules_test.yml"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode != 0 and "RecoErrorRatioHigh" in done.stdout + done.stderr


def test_every_alert_is_tested_firing_and_silent() -> None:
    fired: set[str] = set()
    silent: set[str] = set()
    for case in yaml.safe_load(RULES_TEST.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {r["alert"] for r in rules()}
    assert names == fired == silent


def test_every_alert_has_a_severity_and_keeps_the_instance() -> None:
    for rule in rules():
        assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
        assert "instance" in rule["expr"] or "by (job, instance" in rule["expr"], rule["alert"]


def test_every_metric_a_rule_uses_is_one_the_operations_guide_lists() -> None:
    documented = set(re.findall(r"^\| `(reco_[a-z_]+)` \|", OPERATIONS.read_text(), re.MULTILINE))
    for rule in rules():
        for name in METRIC.findall(rule["expr"]):
            base = HISTOGRAM_SUFFIX.sub("", name)
            assert name in documented or base in documented, f"{rule['alert']}: {name}"


def test_the_operations_guide_gives_every_alert() -> None:
    text = OPERATIONS.read_text()
    for rule in rules():
        assert f"`{rule['alert']}`" in text, rule["alert"]
