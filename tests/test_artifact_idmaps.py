"""Id maps used in place: the msgpack file memory-mapped, ids read through byte spans, rows
found through sorted 64-bit hashes with every hit confirmed on the bytes. Lookups are exactly
those of a dict; a damaged or inconsistent map is refused naming the file."""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Callable

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reco_sidecar.artifact import idmaps, layout, loader
from reco_sidecar.common.errors import ArtifactError
from reco_sidecar.engine.idindex import DictIdIndex, HashedIdIndex
from tests.support.versions import resign

ODD_IDS = ["", "a", "é", "x" * 31, "y" * 32, "z" * 255, "w" * 256, "v" * 70_000, "日本語", "emoji 🙂", "a\x00b"]


def load(tmp_path: pathlib.Path, ids: list[str], data: bytes | None = None) -> HashedIdIndex:
    enc = idmaps.encode(ids)
    path = tmp_path / "ids.msgpack"
    path.write_bytes(enc.data if data is None else data)
    fd = os.open(path, os.O_RDONLY)
    try:
        return idmaps.hashed_index(fd, path, path.stat().st_size, len(ids), "user", enc.spans, enc.hashes,
                                   enc.hash_rows, (tmp_path / "h.npy", tmp_path / "r.npy"))
    finally:
        os.close(fd)


def test_the_file_is_exactly_what_msgpack_writes(tmp_path: pathlib.Path) -> None:
    assert idmaps.encode(ODD_IDS).data == msgpack.packb(ODD_IDS)
    index = load(tmp_path, ODD_IDS)
    assert list(index.ids) == ODD_IDS and index.ids[7] == "v" * 70_000 and len(index) == len(ODD_IDS)
    for row, id_ in enumerate(ODD_IDS):
        assert index.row(id_) == row


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=40), unique=True, max_size=300), st.lists(st.text(max_size=40), max_size=30))
def test_lookups_are_exactly_a_dicts(tmp_path_factory: pytest.TempPathFactory, ids: list[str],
                                     probes: list[str]) -> None:
    tmp = tmp_path_factory.mktemp("ids")
    index, plain = load(tmp, ids), DictIdIndex(ids)
    for id_ in [*ids, *probes, *(i + "x" for i in ids[:20]), *(i[:-1] for i in ids[:20])]:
        assert index.row(id_) == plain.row(id_)
    rows, unknown = index.rows_of([*probes, *ids[:10]])
    want_rows, want_unknown = plain.rows_of([*probes, *ids[:10]])
    assert rows.tolist() == want_rows.tolist() and unknown == want_unknown
    asked = [*probes, *ids, *(i + "x" for i in ids[:20])]
    assert index.rows_or_none(asked) == plain.rows_or_none(asked) == [plain.row(i) for i in asked]
    assert list(index.ids) == ids


def test_a_repeated_id_is_refused(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ArtifactError, match="user ids are not unique"):
        load(tmp_path, ["a", "b", "c", "b"])


def test_an_id_that_is_not_utf8_is_refused(tmp_path: pathlib.Path) -> None:
    ids = ["ab", "cd"]
    data = bytearray(msgpack.packb(ids))
    data[-1] = 0xFF  # "c\xff"
    with pytest.raises(ArtifactError, match="not UTF-8"):
        load(tmp_path, ids, bytes(data))


def test_a_character_split_across_two_ids_is_refused(tmp_path: pathlib.Path) -> None:
    # ids "a\xc3" and "\xa9b": each header is right and the bytes together decode ("aéb"),
    # but the second id starts inside a character
    path = tmp_path / "ids.msgpack"
    path.write_bytes(b"\x92\xa2a\xc3\xa2\xa9b")
    spans = np.array([[2, 4], [5, 7]], dtype=np.int64)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(ArtifactError, match="holds an id that is not UTF-8"):
            idmaps.hashed_index(fd, path, 7, 2, "user", spans, np.array([0, 1], dtype=np.uint64),
                                np.array([0, 1], dtype=np.int64), (path, path))
    finally:
        os.close(fd)


@pytest.fixture
def version(demo_copy: pathlib.Path) -> pathlib.Path:
    return demo_copy / "demo" / "1"


def test_the_model_uses_the_mapped_form(version: pathlib.Path) -> None:
    model = loader.open_model(version)
    assert isinstance(model.users, HashedIdIndex) and isinstance(model.items, HashedIdIndex)
    ids = msgpack.unpackb((version / layout.USER_IDS).read_bytes())
    assert [model.users.row(i) for i in ids] == list(range(len(ids)))
    assert model.users.row("nobody") is None and list(model.users.ids) == ids


def test_an_artifact_without_the_derived_files_uses_a_dict(version: pathlib.Path) -> None:
    raw = json.loads((version / layout.MANIFEST).read_text())
    for name in (*layout.USER_ID_FILES, *layout.ITEM_ID_FILES):
        del raw["files"][name]
        (version / name).unlink()
    (version / layout.MANIFEST).write_text(json.dumps(raw))
    model = loader.open_model(version)
    assert isinstance(model.users, DictIdIndex)
    ids = msgpack.unpackb((version / layout.USER_IDS).read_bytes())
    assert [model.users.row(i) for i in ids] == list(range(len(ids)))


def save(v: pathlib.Path, name: str, arr: np.ndarray) -> None:
    np.save(v / name, arr)
    resign(v, name)


def shifted_spans(v: pathlib.Path) -> None:
    spans = np.load(v / "user_id_spans.npy")
    spans[3, 1] -= 1
    save(v, "user_id_spans.npy", spans)


def shuffled_hashes(v: pathlib.Path) -> None:
    save(v, "item_id_hashes.npy", np.load(v / "item_id_hashes.npy")[::-1].copy())


def wrong_hashes(v: pathlib.Path) -> None:
    save(v, "item_id_hashes.npy", np.sort(np.load(v / "item_id_hashes.npy") ^ np.uint64(1)))


def rows_not_a_permutation(v: pathlib.Path) -> None:
    rows = np.load(v / "user_id_hash_rows.npy")
    rows[0] = rows[1]
    save(v, "user_id_hash_rows.npy", rows)


def ids_rewritten(v: pathlib.Path) -> None:
    ids = msgpack.unpackb((v / layout.USER_IDS).read_bytes())
    (v / layout.USER_IDS).write_bytes(msgpack.packb([i + "!" for i in ids]))
    resign(v, layout.USER_IDS)


@pytest.mark.parametrize(("damage", "where", "message"), [
    (shifted_spans, layout.USER_IDS, "user id spans do not match the msgpack strings"),
    (shuffled_hashes, "item_id_hashes.npy", "item id hashes are not ascending"),
    (wrong_hashes, "item_id_hashes.npy", "item id hashes do not match the ids"),
    (rows_not_a_permutation, "user_id_hash_rows.npy", "user hash rows are not a permutation"),
    (ids_rewritten, layout.USER_IDS, "user id spans do not match"),
])
def test_an_inconsistent_map_is_refused_naming_the_file(version: pathlib.Path, damage: Callable[[pathlib.Path], None],
                                                        where: str, message: str) -> None:
    damage(version)
    with pytest.raises(ArtifactError, match=message) as e:
        loader.open_model(version)
    assert e.value.path.endswith(where)
