import csv
import os
import pathlib
import pickle
import shutil
from typing import Any

import numpy as np
import pytest

from reco_sidecar.librecommender import model_save, safe_npz
from reco_sidecar.librecommender.errors import ImportRefused

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "librecommender"


def _pairs() -> set[tuple[str, str]]:
    with (FIXTURES / "interactions.csv").open() as f:
        return {(r["user"], r["item"]) for r in csv.DictReader(f)}


def test_als_embed_form_drops_the_mean_row_into_the_cold_start_vector() -> None:
    raw = safe_npz.load(FIXTURES / "als_model_save" / "als.npz")
    m = model_save.read(FIXTURES / "als_model_save", "als")
    assert (len(m.user_ids), len(m.item_ids)) == (120, 240)
    np.testing.assert_array_equal(m.user_vectors, raw["user_embed"][:-1])
    np.testing.assert_array_equal(m.item_vectors, raw["item_embed"][:-1])
    np.testing.assert_array_equal(m.cold_start_vector, raw["user_embed"][-1])
    assert m.user_ids[:2] == ["100", "101"] and m.item_ids[:2] == ["1000", "1001"]
    assert m.algorithm == "librecommender-als"
    assert m.hyper_parameters["embed_size"] == 16 and m.hyper_parameters["alpha"] == 8
    assert m.source["form"] == "embed"
    assert m.default_items is not None and sorted(m.default_items.tolist()) == list(range(240))


def test_consumed_items_are_rebuilt_from_interaction_data() -> None:
    m = model_save.read(FIXTURES / "bpr_model_save", "bpr")
    got = {(m.user_ids[u], m.item_ids[i]) for u, i in zip(m.seen_users.tolist(), m.seen_items.tolist(), strict=True)}
    assert got == _pairs()


def test_tf_variables_become_the_serving_form_with_bias_column() -> None:
    raw = safe_npz.load(FIXTURES / "bpr_model_save" / "bpr_tf_variables.npz")
    m = model_save.read(FIXTURES / "bpr_model_save", "bpr")
    assert m.user_vectors.shape == (120, 17) and m.item_vectors.shape == (240, 17)
    np.testing.assert_array_equal(m.user_vectors[:, :16], raw["embedding/user_embeds_var:0"])
    assert np.all(m.user_vectors[:, 16] == 1.0)
    np.testing.assert_array_equal(m.item_vectors[:, 16], raw["embedding/item_bias_var:0"])
    np.testing.assert_allclose(m.cold_start_vector, m.user_vectors.mean(axis=0), rtol=1e-6)
    assert m.user_ids[0] == "u100" and m.source["form"] == "tf_variables"


def test_pickles_beside_the_model_are_never_opened(tmp_path: pathlib.Path) -> None:
    folder = shutil.copytree(FIXTURES / "bpr_model_save", tmp_path / "bpr")
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    for pkl in folder.glob("*.pkl"):
        pkl.write_bytes(pickle.dumps(Payload()))
    model_save.read(folder, "bpr")
    assert not marker.exists()


def test_wrong_model_name_says_what_is_missing() -> None:
    with pytest.raises(ImportRefused, match=r"neither svd\.npz nor svd_tf_variables\.npz"):
        model_save.read(FIXTURES / "als_model_save", "svd")


def test_embeddings_that_do_not_match_the_ids_are_refused(tmp_path: pathlib.Path) -> None:
    folder = shutil.copytree(FIXTURES / "als_model_save", tmp_path / "als")
    raw = safe_npz.load(folder / "als.npz")
    np.savez(folder / "als.npz", user_embed=raw["user_embed"][1:], item_embed=raw["item_embed"])
    with pytest.raises(ImportRefused, match="120 user ids and 240 item ids, but embeddings for 119 users"):
        model_save.read(folder, "als")


def test_interactions_with_unknown_ids_are_refused(tmp_path: pathlib.Path) -> None:
    folder = shutil.copytree(FIXTURES / "als_model_save", tmp_path / "als")
    info = safe_npz.load(folder / "als_data_info.npz")
    data = info["interaction_data"].copy()
    data[0, 0] = 99_999
    np.savez(folder / "als_data_info.npz", **{**info, "interaction_data": data})  # type: ignore[arg-type]
    with pytest.raises(ImportRefused, match="1 unknown users and 0 unknown items"):
        model_save.read(folder, "als")


def test_unknown_tf_variables_are_refused_rather_than_scored_wrongly(tmp_path: pathlib.Path) -> None:
    folder = shutil.copytree(FIXTURES / "bpr_model_save", tmp_path / "svd")
    raw = safe_npz.load(folder / "bpr_tf_variables.npz")
    # numpy's stubs type **kwds as the allow_pickle flag
    arrays = {**raw, "embedding/user_bias_var:0": np.zeros(120, np.float32)}
    np.savez(folder / "bpr_tf_variables.npz", **arrays)  # type: ignore[arg-type]
    with pytest.raises(ImportRefused, match=r"user_bias_var.*inference_only=True"):
        model_save.read(folder, "bpr")


def test_default_recs_outside_the_catalogue_are_refused(tmp_path: pathlib.Path) -> None:
    folder = shutil.copytree(FIXTURES / "als_model_save", tmp_path / "als")
    np.savez(folder / "als_default_recs.npz", default_recs=np.array([3, 240]))
    with pytest.raises(ImportRefused, match="default recommendations"):
        model_save.read(folder, "als")
