"""Publishing a copy of a model version, as a publisher would: built under a temporary name
in the model directory and renamed into place, so a watcher never sees half a version."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
from collections.abc import Callable

from reco_sidecar.artifact import version_dirs


def copy_version(model_dir: pathlib.Path, src: int, dst: int | None = None, *,
                 edit: Callable[[dict[str, object]], object] | None = None, raw_manifest: str | None = None,
                 directory: str | None = None, **manifest_changes: object) -> int:
    """Publishes a byte copy of version `src` (real files, not links: its own page cache, as a
    retrained model would have) as version `dst` (default: the next free number), with the
    manifest's version and `manifest_changes` rewritten and its checksums unchanged. Returns
    the new version's number.

    For fault injection: `edit` changes the manifest in place before it is written,
    `raw_manifest` replaces its text altogether, and `directory` names the published
    directory (e.g. one that is not a canonical version number)."""
    if dst is None:
        dst = (version_dirs.latest_version(model_dir) or 0) + 1
    tmp = model_dir / f".tmp-copy-{dst}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(model_dir / str(src), tmp)
    manifest = json.loads((tmp / "manifest.json").read_text())
    manifest.update(version=dst, **manifest_changes)
    if edit is not None:
        edit(manifest)
    text = raw_manifest if raw_manifest is not None else json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    (tmp / "manifest.json").write_text(text)
    tmp.rename(model_dir / (directory or str(dst)))
    return dst
