"""Finds model versions: integer directories under <model_root>/<model_name>/.

Hidden temporary directories and directories without a manifest are never versions,
so a version that is still being copied in is invisible until it is complete.
"""

from __future__ import annotations

import pathlib

from reco_sidecar.artifact import layout
from reco_sidecar.common import names

# The one rule for what names a version (canonical ASCII digits), shared with version specs.
from reco_sidecar.common.versions import version_number

__all__ = ["discover_models", "latest_version", "list_models", "list_versions", "version_dir", "version_number"]


def list_versions(model_dir: pathlib.Path) -> list[int]:
    """Complete versions, ascending."""
    if not model_dir.is_dir():
        return []
    out = []
    for entry in model_dir.iterdir():
        # Names such as '²' or '007' are not versions (common/versions.py has the one rule).
        number = version_number(entry.name)
        if number is not None and entry.is_dir() and (entry / layout.MANIFEST).is_file():
            out.append(number)
    return sorted(out)


def latest_version(model_dir: pathlib.Path) -> int | None:
    versions = list_versions(model_dir)
    return versions[-1] if versions else None


def list_models(model_root: pathlib.Path) -> list[str]:
    """Models under the root whose names follow the model-name rule."""
    return discover_models(model_root)[0]


def discover_models(model_root: pathlib.Path) -> tuple[list[str], list[tuple[str, str]]]:
    """(models to serve, [(name, why skipped)]): every directory holding a complete version,
    split by `--model`'s rule. A name the rule refuses (hidden, an option, undecodable bytes,
    whitespace) would otherwise reach status replies, metric labels and the workers' wire."""
    if not model_root.is_dir():
        return [], []
    found = sorted(p.name for p in model_root.iterdir() if p.is_dir() and list_versions(p))
    skipped = [(names.printable(n), f"not a model name ({names.RULE})") for n in found if not names.is_model_name(n)]
    return [n for n in found if names.is_model_name(n)], skipped


def version_dir(model_root: pathlib.Path, name: str, version: int) -> pathlib.Path:
    return model_root / name / str(version)
