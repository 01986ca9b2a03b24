"""Publishing extra versions of a test model: retrained, copied, or deliberately broken."""

from __future__ import annotations

import json
import pathlib

from harness.versions import copy_version

__all__ = ["copy_version", "flip_byte", "poison_factors", "resign", "truncate"]


def flip_byte(path: pathlib.Path, offset: int = -5) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: pathlib.Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def resign(version_dir: pathlib.Path, name: str) -> None:
    """Rewrites the manifest's checksum and size for `name`, as a careless publisher would."""
    from reco_sidecar.artifact.checksums import sha256_file

    manifest_path = version_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    path = version_dir / name
    manifest["files"][name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    manifest_path.write_text(json.dumps(manifest))


def poison_factors(version_dir: pathlib.Path) -> None:
    """A NaN in the item factors with a manifest that vouches for it: only a full open finds it."""
    import numpy as np

    path = version_dir / "item_factors.npy"
    factors = np.load(path)
    factors[3, 2] = np.nan
    np.save(path, factors)
    resign(version_dir, "item_factors.npy")
