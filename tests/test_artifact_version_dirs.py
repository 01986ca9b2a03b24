from __future__ import annotations

import pathlib

from reco_sidecar.artifact import version_dirs


def test_only_complete_integer_directories_are_versions(tmp_path: pathlib.Path) -> None:
    model = tmp_path / "m"
    for name, manifest in [("1", True), ("3", True), ("2", False), (".tmp-abc", True), ("latest", True)]:
        (model / name).mkdir(parents=True)
        if manifest:
            (model / name / "manifest.json").write_text("{}")
    (model / "7").write_text("a file, not a directory")
    assert version_dirs.list_versions(model) == [1, 3]
    assert version_dirs.latest_version(model) == 3
    assert version_dirs.list_models(tmp_path) == ["m"]
    assert version_dirs.latest_version(tmp_path / "absent") is None


def test_only_canonical_ascii_numbers_are_versions(tmp_path: pathlib.Path) -> None:
    model = tmp_path / "m"
    for name in ["2", "07", "0", "\u00b2", "\u0663", "\uff15", "12"]:  # ², Arabic-Indic 3, fullwidth 5
        (model / name).mkdir(parents=True)
        (model / name / "manifest.json").write_text("{}")
    assert version_dirs.list_versions(model) == [2, 12]
