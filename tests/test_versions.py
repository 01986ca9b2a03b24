"""The one version-spec rule, and every place that reads a version following it."""

from __future__ import annotations

import pathlib
import shutil

import pytest

from reco_sidecar.artifact import version_dirs
from reco_sidecar.common.errors import InvalidArgument
from reco_sidecar.common.versions import LATEST, parse_version_spec, version_number


@pytest.mark.parametrize(("text", "spec"), [("latest", LATEST), ("", LATEST), ("  latest ", LATEST),
                                            ("1", 1), (" 42 ", 42), ("9" * 18, int("9" * 18))])
def test_accepted(text: str, spec: object) -> None:
    assert parse_version_spec(text) == spec


@pytest.mark.parametrize("text", ["0", "007", "-1", "+1", "1.0", "²", "١", "1e3", "newest", "LATEST",
                                  "9" * 19, "1" * 5000, "1 2"])
def test_refused_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        parse_version_spec(text, field="request.version")
    assert e.value.field == "request.version"


def test_directory_names_follow_the_same_rule() -> None:
    assert [version_number(n) for n in ("3", "²", "03", "0", "x", "")] == [3, None, None, None, None, None]


def test_source_scan_ignores_names_that_are_not_versions(demo_copy: pathlib.Path) -> None:
    model_dir = demo_copy / "demo"
    for name in ("²", "007", "١"):
        shutil.copytree(model_dir / "1", model_dir / name)
    assert version_dirs.list_versions(model_dir) == [1]
    assert version_dirs.latest_version(model_dir) == 1
