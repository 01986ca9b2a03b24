"""Publishing extra versions of a test model: retrained, copied, or deliberately broken."""

from __future__ import annotations

import json
import pathlib
import shutil

from reco_sidecar.artifact import source


def copy_version(model_dir: pathlib.Path, src: int, **manifest_changes: object) -> int:
    """Publishes a copy of version `src` as the next version; returns its number."""
    dst = (source.latest_version(model_dir) or 0) + 1
    tmp = model_dir / f".tmp-copy-{dst}"
    shutil.copytree(model_dir / str(src), tmp)
    manifest = json.loads((tmp / "manifest.json").read_text())
    manifest.update(version=dst, **manifest_changes)
    (tmp / "manifest.json").write_text(json.dumps(manifest))
    tmp.rename(model_dir / str(dst))
    return dst


def flip_byte(path: pathlib.Path, offset: int = -5) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: pathlib.Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
