"""Whatever bytes a listed file holds, with a manifest that vouches for them, loading gives a
Model or an ArtifactError naming a file: never another exception."""

from __future__ import annotations

import pathlib
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reco_sidecar.artifact import layout, loader
from reco_sidecar.common.errors import ArtifactError
from tests.support.versions import resign

TARGETS = [layout.DEFAULT_ITEMS, layout.SEEN_INDPTR, layout.ITEM_POPULARITY, layout.ITEM_NORM_ORDER,
           "user_id_spans.npy", layout.ITEM_IDS, layout.ITEM_METADATA]


def npy_with_header(header: str, payload: bytes) -> bytes:
    head = header.encode("latin1", "replace")
    return b"\x93NUMPY\x01\x00" + len(head).to_bytes(2, "little") + head + payload


headers = st.one_of(
    st.text(max_size=120),
    st.builds(lambda d, f, s: f"{{'descr': {d!r}, 'fortran_order': {f!r}, 'shape': {s!r}, }}",
              st.one_of(st.sampled_from(["<i4", "<i8", "<f4", "|O", "<U3", "V8", "[('a','<i4')]", ""]),
                        st.integers(), st.text(max_size=5)),
              st.one_of(st.booleans(), st.integers()),
              st.one_of(st.tuples(st.integers(-3, 2**62)), st.tuples(), st.text(max_size=4),
                        st.lists(st.integers(0, 9), max_size=3))),
)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, demo_root: pathlib.Path) -> pathlib.Path:
    root = tmp_path_factory.mktemp("hostile") / "root"
    shutil.copytree(demo_root, root)
    version = root / "demo" / "1"
    np.save(version / layout.DEFAULT_ITEMS, np.arange(5, dtype=np.int32))
    resign(version, layout.DEFAULT_ITEMS)
    loader.open_model(version)
    return version


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(TARGETS), headers, st.binary(max_size=64), st.booleans())
def test_any_file_content_is_a_model_or_an_artifact_error(pristine: pathlib.Path, target: str, header: str,
                                                          payload: bytes, raw: bool) -> None:
    path = pristine / target
    original = path.read_bytes()
    try:
        path.write_bytes(payload if raw else npy_with_header(header, payload))
        resign(pristine, target)
        try:
            loader.open_model(pristine)
        except ArtifactError as e:
            assert e.path.startswith(str(pristine))
    finally:
        path.write_bytes(original)
        resign(pristine, target)
