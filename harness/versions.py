"""Publishing a copy of a model version, as a publisher would: built under a temporary name
in the model directory and renamed into place, so a watcher never sees half a version."""

from __future__ import annotations

import json
import os
import pathlib
import shutil

from reco_sidecar.artifact import source


def copy_version(model_dir: pathlib.Path, src: int, dst: int | None = None, **manifest_changes: object) -> int:
    """Publishes a byte copy of version `src` (real files, not links: its own page cache, as a
    retrained model would have) as version `dst` (default: the next free number), with the
    manifest's version and `manifest_changes` rewritten and its checksums unchanged. Returns
    the new version's number."""
    if dst is None:
        dst = (source.latest_version(model_dir) or 0) + 1
    tmp = model_dir / f".tmp-copy-{dst}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(model_dir / str(src), tmp)
    manifest = json.loads((tmp / "manifest.json").read_text())
    manifest.update(version=dst, **manifest_changes)
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.rename(model_dir / str(dst))
    return dst
