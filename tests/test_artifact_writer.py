from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from reco_sidecar.artifact import checksums, layout, loader, writer
from reco_sidecar.common.errors import ArtifactError


def _content(n_users: int = 30, n_items: int = 50, d: int = 4) -> writer.ArtifactContent:
    rng = np.random.default_rng(0)
    seen = [sorted(rng.choice(n_items, 3, replace=False).tolist()) for _ in range(n_users)]
    return writer.ArtifactContent(
        user_ids=[f"user-{i}" for i in range(n_users)], item_ids=[f"item-{i}" for i in range(n_items)],
        user_factors=rng.standard_normal((n_users, d)).astype(np.float32),
        item_factors=rng.standard_normal((n_items, d)).astype(np.float32),
        seen_indptr=np.cumsum([0] + [len(s) for s in seen]), seen_indices=np.concatenate(seen),
        item_popularity=rng.random(n_items).astype(np.float32), algorithm="test",
        training={"factors": d}, metrics={"ndcg_at_10": 0.5}, fold_in={"regularization": 0.1, "alpha": 1.0},
    )


def test_versions_are_numbered_and_hold_everything_the_manifest_lists(tmp_path: pathlib.Path) -> None:
    first = writer.write_version(tmp_path, "m", _content())
    second = writer.write_version(tmp_path, "m", _content())
    assert (first.name, second.name) == ("1", "2")
    assert not [p for p in (tmp_path / "m").iterdir() if p.name.startswith(layout.TMP_PREFIX)]
    manifest = json.loads((second / layout.MANIFEST).read_text())
    assert manifest["version"] == 2 and manifest["user_count"] == 30 and manifest["factors"] == 4
    assert set(manifest["files"]) == {*layout.REQUIRED_FILES, layout.ITEM_NEIGHBOURS, layout.ITEM_NEIGHBOUR_SCORES,
                                      *layout.NORM_ORDER_FILES, *layout.USER_ID_FILES, *layout.ITEM_ID_FILES}
    assert manifest["ann"]["exact_neighbours"] == 49  # every other item of 50
    assert manifest["metrics"] == {"ndcg_at_10": 0.5} and manifest["ann"]["search_k"] > 0
    for name, entry in manifest["files"].items():
        assert checksums.sha256_file(second / name) == entry["sha256"]
    model = loader.open_model(second)
    assert model.users.ids[3] == "user-3" and model.seen_rows(0).tolist() == _content().seen_indices[:3].tolist()


def test_a_failed_write_leaves_no_version_and_no_temporary_directory(tmp_path: pathlib.Path) -> None:
    bad = _content()
    object.__setattr__(bad, "item_factors", np.zeros((50, 4, 2), dtype=np.float32))  # annoy cannot index it
    with pytest.raises((ValueError, IndexError, TypeError)):
        writer.write_version(tmp_path, "m", bad)
    assert list((tmp_path / "m").iterdir()) == []


def test_duplicate_ids_are_refused_at_load(tmp_path: pathlib.Path) -> None:
    content = _content()
    dup = [*content.user_ids[:-1], content.user_ids[0]]
    path = writer.write_version(tmp_path, "m", writer.ArtifactContent(**{**content.__dict__, "user_ids": dup}))
    with pytest.raises(ArtifactError, match="user ids are not unique"):
        loader.open_model(path)
