"""The scoring kernel's norm order lives in the artifact: the writer stores it, the loader maps
it (one copy in the page cache for every worker) and checks its structure; an artifact
without it still loads, with the order built at load as before."""

from __future__ import annotations

import json
import mmap
import pathlib
from collections.abc import Callable

import numpy as np
import pytest

from harness.accounting import file_mappings
from reco_sidecar.artifact import layout, loader
from reco_sidecar.common.errors import ArtifactError
from reco_sidecar.engine import scoring
from reco_sidecar.engine.query import RecQuery, Restriction
from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.server import running_sidecar
from tests.support.versions import resign


def backed_by_a_file(a: np.ndarray) -> bool:
    base: object = a
    while isinstance(base, np.ndarray):
        base = base.base
    return isinstance(base, mmap.mmap)


def test_the_stored_order_is_the_kernels_own_and_is_mapped_not_copied(demo_version_dir: pathlib.Path) -> None:
    model = loader.open_model(demo_version_dir)
    built = scoring.NormOrder.build(model.item_factors)
    order = model.norm_order
    assert order is not None
    for field in ("items", "norms", "rows", "positions"):
        assert np.array_equal(getattr(order, field), getattr(built, field)), field
    assert backed_by_a_file(order.items) and backed_by_a_file(order.norms) and backed_by_a_file(order.rows)
    assert order.items.flags.c_contiguous and not order.items.flags.writeable


def drop_norm_order(version: pathlib.Path) -> None:
    raw = json.loads((version / layout.MANIFEST).read_text())
    for name in layout.NORM_ORDER_FILES:
        del raw["files"][name]
        (version / name).unlink()
    (version / layout.MANIFEST).write_text(json.dumps(raw))


def test_an_artifact_without_the_order_loads_and_answers_the_same(demo_copy: pathlib.Path,
                                                                  demo_version_dir: pathlib.Path) -> None:
    version = demo_copy / "demo" / "1"
    drop_norm_order(version)
    old, new = loader.open_model(version), loader.open_model(demo_version_dir)
    assert old.norm_order is not None and not backed_by_a_file(old.norm_order.items)
    queries = [RecQuery(0, 10, Restriction.none(), user_row=u) for u in range(0, len(old.users), 7)]
    for a, b in zip(old.recommend(queries), new.recommend(queries), strict=True):
        assert a.rows.tolist() == b.rows.tolist() and np.array_equal(a.scores, b.scores)


def save(version: pathlib.Path, name: str, arr: np.ndarray) -> None:
    np.save(version / name, arr)
    resign(version, name)


def not_a_permutation(v: pathlib.Path) -> None:
    rows = np.load(v / layout.ITEM_NORM_ORDER)
    rows[1] = rows[0]
    save(v, layout.ITEM_NORM_ORDER, rows)


def ascending_norms(v: pathlib.Path) -> None:
    save(v, layout.ITEM_NORMS, np.load(v / layout.ITEM_NORMS)[::-1].copy())


def other_rows(v: pathlib.Path) -> None:
    save(v, layout.ITEMS_BY_NORM, np.load(v / layout.ITEMS_BY_NORM)[::-1].copy())


def wrong_norms(v: pathlib.Path) -> None:
    save(v, layout.ITEM_NORMS, np.load(v / layout.ITEM_NORMS) * 0.5)


def only_two_listed(v: pathlib.Path) -> None:
    raw = json.loads((v / layout.MANIFEST).read_text())
    del raw["files"][layout.ITEM_NORMS]
    (v / layout.MANIFEST).write_text(json.dumps(raw))


@pytest.mark.parametrize(("damage", "where", "message"), [
    (not_a_permutation, layout.ITEM_NORM_ORDER, "is not a permutation of the item rows"),
    (ascending_norms, layout.ITEM_NORMS, "norms are not finite, non-negative and descending"),
    (other_rows, layout.ITEMS_BY_NORM, "rows differ from item_factors in the stored order"),
    (wrong_norms, layout.ITEM_NORMS, "norms differ from the sorted factors' norms"),
    (only_two_listed, "", "without the rest of"),
])
def test_a_damaged_order_is_refused_naming_the_file(demo_copy: pathlib.Path, damage: Callable[[pathlib.Path], None],
                                                    where: str, message: str) -> None:
    version = demo_copy / "demo" / "1"
    damage(version)
    with pytest.raises(ArtifactError, match=message) as e:
        loader.open_model(version)
    assert e.value.path.endswith(where)


def test_both_workers_map_the_one_stored_order(demo_root: pathlib.Path) -> None:
    version_dir = str((demo_root / "demo" / "1").resolve())
    users = loader.open_model(demo_root / "demo" / "1").users.ids[:20]
    with running_sidecar(demo_root, "demo", workers=2) as sc:
        for address in sc.worker_addresses:
            stub = sc.stub(address)
            for uid in users:
                stub.Recommend(reco_pb2.RecommendRequest(user_id=uid, n=10), timeout=10)
        for address in sc.worker_addresses:
            pid = sc.stub(address).GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=10).worker.pid
            mapped = {pathlib.Path(p).name: f for p, f in file_mappings(pid).items()
                      if p.startswith(version_dir + "/")}
            m = mapped[layout.ITEMS_BY_NORM]
            assert m["Rss"] > 0 and m["Shared_Clean"] == m["Rss"], (pid, m)
            assert m["Private_Clean"] == 0 and m["Private_Dirty"] == 0, (pid, m)
