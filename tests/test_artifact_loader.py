"""Malformed version directories are refused with an error that says what and where, by the
loader and by `serve` before it forks a worker (exit code 4)."""

from __future__ import annotations

import json
import pathlib
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from annoy import AnnoyIndex

from reco_sidecar.artifact import layout, loader
from reco_sidecar.artifact.checksums import sha256_file
from reco_sidecar.common.errors import ArtifactError
from reco_sidecar.common.exit_codes import ExitCode
from tests.support.server import command, stop_tree


def resign(version_dir: pathlib.Path, name: str) -> None:
    """Makes the manifest agree with the file again, so only the loader's own checks can object."""
    path = version_dir / name
    manifest = json.loads((version_dir / layout.MANIFEST).read_text())
    manifest["files"][name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    (version_dir / layout.MANIFEST).write_text(json.dumps(manifest))


def truncate(d: pathlib.Path) -> None:
    path = d / layout.USER_FACTORS
    path.write_bytes(path.read_bytes()[:-100])


def truncate_and_resign(d: pathlib.Path) -> None:
    truncate(d)
    resign(d, layout.USER_FACTORS)


def wrong_dtype(d: pathlib.Path) -> None:
    np.save(d / layout.ITEM_FACTORS, np.load(d / layout.ITEM_FACTORS).astype(np.float64))
    resign(d, layout.ITEM_FACTORS)


def wrong_shape(d: pathlib.Path) -> None:
    np.save(d / layout.USER_FACTORS, np.load(d / layout.USER_FACTORS)[:-1])
    resign(d, layout.USER_FACTORS)


def nan_factor(d: pathlib.Path) -> None:
    factors = np.load(d / layout.ITEM_FACTORS)
    factors[3, 2] = np.nan
    np.save(d / layout.ITEM_FACTORS, factors)
    resign(d, layout.ITEM_FACTORS)


def bad_json(d: pathlib.Path) -> None:
    (d / layout.MANIFEST).write_text('{"format_version": 1, "files": ')


def manifest_lacks_a_key(d: pathlib.Path) -> None:
    manifest = json.loads((d / layout.MANIFEST).read_text())
    del manifest["item_count"]
    (d / layout.MANIFEST).write_text(json.dumps(manifest))


def checksum_mismatch(d: pathlib.Path) -> None:
    path = d / layout.ITEM_POPULARITY
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))


def annoy_wrong_count(d: pathlib.Path) -> None:
    factors = np.load(d / layout.ITEM_FACTORS)
    index = AnnoyIndex(factors.shape[1], "angular")
    for row in range(len(factors) - 5):
        index.add_item(row, factors[row])
    index.build(2)
    index.save(str(d / layout.ANN_INDEX))
    index.unload()
    resign(d, layout.ANN_INDEX)


def symlink_outside(d: pathlib.Path) -> None:
    path = d / layout.ITEM_IDS
    outside = d.parent.parent / "elsewhere.msgpack"
    path.rename(outside)
    path.symlink_to(outside)


def missing_file(d: pathlib.Path) -> None:
    (d / layout.SEEN_INDICES).unlink()


def ids_not_msgpack(d: pathlib.Path) -> None:
    (d / layout.USER_IDS).write_bytes(b"\xc1\xc1\xc1")
    resign(d, layout.USER_IDS)


@dataclass(frozen=True)
class Case:
    damage: Callable[[pathlib.Path], None]
    message: str
    where: str  # the file the error names
    # Found by verify() (manifest, files, sizes, checksums, array headers, index counts) or only
    # when the contents are read.
    by_verify: bool


CASES = {
    "truncated array": Case(truncate, "(truncated or replaced)", layout.USER_FACTORS, True),
    "truncated array, manifest re-signed": Case(truncate_and_resign, "not a readable .npy array",
                                                layout.USER_FACTORS, True),
    "wrong dtype": Case(wrong_dtype, "dtype float64, expected float32", layout.ITEM_FACTORS, True),
    "wrong shape": Case(wrong_shape, "shape (594, 16), expected (595, 16)", layout.USER_FACTORS, True),
    "NaN factor": Case(nan_factor, "factors contain NaN or infinity", layout.ITEM_FACTORS, True),
    "bad JSON manifest": Case(bad_json, "manifest.json is not valid JSON", layout.MANIFEST, True),
    "manifest lacks a key": Case(manifest_lacks_a_key, "manifest lacks 'item_count'", "", True),
    "checksum mismatch": Case(checksum_mismatch, "sha256 does not match the manifest", layout.ITEM_POPULARITY,
                              True),
    "annoy wrong item count": Case(annoy_wrong_count, "annoy index holds", layout.ANN_INDEX, True),
    "symlink leaving the version": Case(symlink_outside, "resolves outside the version directory",
                                        layout.ITEM_IDS, True),
    "missing file": Case(missing_file, "file listed in the manifest is missing", layout.SEEN_INDICES, True),
    "id map not msgpack": Case(ids_not_msgpack, "user id map is not valid msgpack", layout.USER_IDS, False),
}


@pytest.fixture
def version_dir(demo_copy: pathlib.Path) -> pathlib.Path:
    return demo_copy / "demo" / "1"


def test_the_undamaged_copy_loads(version_dir: pathlib.Path) -> None:
    model = loader.open_model(version_dir, )
    assert (model.name, model.version, model.user_factors.shape) == ("demo", 1, (595, 16))
    # The shapes in CASES are those of this model.
    assert model.item_factors.dtype == np.float32


@pytest.mark.parametrize("name", CASES)
def test_open_model_refuses_with_a_clear_error(name: str, version_dir: pathlib.Path) -> None:
    case = CASES[name]
    case.damage(version_dir)
    with pytest.raises(ArtifactError) as e:
        loader.open_model(version_dir, )
    assert case.message in str(e.value)
    assert str(version_dir) in str(e.value)
    if case.where:
        assert e.value.path.endswith(case.where)


@pytest.mark.parametrize("name", CASES)
def test_verify_catches_what_the_manifest_can_tell(name: str, version_dir: pathlib.Path) -> None:
    case = CASES[name]
    case.damage(version_dir)
    if case.by_verify:
        with pytest.raises(ArtifactError, match=case.message.replace("(", r"\(").replace(")", r"\)")):
            loader.verify(version_dir)
    else:
        loader.verify(version_dir)


def serve_exit(model_root: pathlib.Path) -> tuple[int, str]:
    proc = subprocess.Popen(command(model_root, "demo", 1, []), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        stop_tree(proc)
    assert b'"ready"' not in out
    return proc.returncode, err.decode()


SERVE_CASES = ["truncated array", "wrong dtype", "bad JSON manifest", "checksum mismatch", "annoy wrong item count",
               "symlink leaving the version", "missing file"]


@pytest.mark.parametrize("name", SERVE_CASES)
def test_serve_refuses_a_malformed_version_with_exit_code_4(name: str, demo_copy: pathlib.Path) -> None:
    CASES[name].damage(demo_copy / "demo" / "1")
    code, err = serve_exit(demo_copy)
    assert code == ExitCode.NO_MODEL
    assert "reco-sidecar serve: " in err and CASES[name].message in err
