import json
import pathlib
import shutil
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from reco_sidecar.librecommender import model_save, save_embed
from reco_sidecar.librecommender.errors import ImportRefused

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "librecommender"


@pytest.fixture
def folder(tmp_path: pathlib.Path) -> pathlib.Path:
    return shutil.copytree(FIXTURES / "als_save_embed", tmp_path / "embed")


def _edit(path: pathlib.Path, change: Callable[[Any], object]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_reads_the_same_model_as_model_save() -> None:
    embed = save_embed.read(FIXTURES / "als_save_embed")
    saved = model_save.read(FIXTURES / "als_model_save", "als")
    assert embed.user_ids == saved.user_ids and embed.item_ids == saved.item_ids
    np.testing.assert_array_equal(embed.user_vectors, saved.user_vectors)
    np.testing.assert_array_equal(embed.item_vectors, saved.item_vectors)
    np.testing.assert_allclose(embed.cold_start_vector, saved.cold_start_vector, atol=1e-6)
    assert sorted(zip(embed.seen_users.tolist(), embed.seen_items.tolist(), strict=True)) == sorted(
        zip(saved.seen_users.tolist(), saved.seen_items.tolist(), strict=True))
    assert embed.algorithm == "librecommender-als" and embed.source["form"] == "save_embed"
    assert embed.default_items is None


def test_fewer_user_vectors_than_users_is_refused(folder: pathlib.Path) -> None:
    _edit(folder / "user_embed.json", lambda d: d.pop("7"))
    with pytest.raises(ImportRefused, match=r"holds 119 user vectors but user2id\.json names 120 users"):
        save_embed.read(folder)


def test_more_items_than_item_vectors_is_refused(folder: pathlib.Path) -> None:
    _edit(folder / "item2id.json", lambda d: d.update({"99999": 240}))
    _edit(folder / "id2item.json", lambda d: d.update({"240": 99999}))
    with pytest.raises(ImportRefused, match=r"holds 240 item vectors but item2id\.json names 241 items"):
        save_embed.read(folder)


def test_vectors_of_different_widths_are_refused(folder: pathlib.Path) -> None:
    _edit(folder / "item_embed.json", lambda d: d["3"].append(0.5))
    with pytest.raises(ImportRefused, match="not lists of numbers of one length"):
        save_embed.read(folder)


def test_user_and_item_widths_must_agree(folder: pathlib.Path) -> None:
    _edit(folder / "user_embed.json", lambda d: [v.append(1.0) for v in d.values()])
    with pytest.raises(ImportRefused, match="cannot be multiplied"):
        save_embed.read(folder)


def test_gaps_in_inner_ids_are_refused(folder: pathlib.Path) -> None:
    _edit(folder / "user2id.json", lambda d: d.update({"100": 500}))
    with pytest.raises(ImportRefused, match="without gaps or repeats"):
        save_embed.read(folder)


def test_id2item_disagreeing_with_item2id_is_refused(folder: pathlib.Path) -> None:
    _edit(folder / "id2item.json", lambda d: d.update({"0": 4242}))
    with pytest.raises(ImportRefused, match="inner id 0 maps to 4242"):
        save_embed.read(folder)


def test_consumed_items_outside_the_catalogue_are_refused(folder: pathlib.Path) -> None:
    _edit(folder / "user_consumed.json", lambda d: d["0"].append(240))
    with pytest.raises(ImportRefused, match="outside the 240 known"):
        save_embed.read(folder)


def test_missing_file_is_named(folder: pathlib.Path) -> None:
    (folder / "user_embed.json").unlink()
    with pytest.raises(ImportRefused, match=r"user_embed\.json: file not found"):
        save_embed.read(folder)
