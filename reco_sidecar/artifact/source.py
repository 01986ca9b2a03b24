"""Finds model versions: integer directories under <model_root>/<model_name>/.

Hidden temporary directories and directories without a manifest are never versions,
so a version that is still being copied in is invisible until it is complete.
"""

from __future__ import annotations

import pathlib

from reco_sidecar.artifact import layout


def version_number(name: str) -> int | None:
    """The version a directory name stands for: ASCII digits in canonical form ('7', not '07'
    nor '²', which str.isdigit() accepts and int() does not), positive; otherwise None."""
    if not (name.isascii() and name.isdigit()) or name.startswith("0"):
        return None
    return int(name)


def list_versions(model_dir: pathlib.Path) -> list[int]:
    """Complete versions, ascending."""
    if not model_dir.is_dir():
        return []
    out = []
    for entry in model_dir.iterdir():
        number = version_number(entry.name)
        if number is not None and entry.is_dir() and (entry / layout.MANIFEST).is_file():
            out.append(number)
    return sorted(out)


def latest_version(model_dir: pathlib.Path) -> int | None:
    versions = list_versions(model_dir)
    return versions[-1] if versions else None


def list_models(model_root: pathlib.Path) -> list[str]:
    if not model_root.is_dir():
        return []
    return sorted(p.name for p in model_root.iterdir() if p.is_dir() and list_versions(p))


def version_dir(model_root: pathlib.Path, name: str, version: int) -> pathlib.Path:
    return model_root / name / str(version)
