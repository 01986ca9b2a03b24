"""The demo generator's timestamps and drift: drifting users change cluster once, at their
switch time, and without drift the data is byte for byte what it always was."""

from __future__ import annotations

import hashlib
import pathlib

import numpy as np

from reco_sidecar import cli
from reco_sidecar.training import demo_data

SPEC = demo_data.DemoSpec(users=300, items=150, interactions=5000, clusters=4, seed=9)


def _digest(arrays: tuple[np.ndarray, ...]) -> str:
    return hashlib.sha256(b"".join(
        np.ascontiguousarray(a, dtype=np.int64 if a.dtype.kind in "iu" else np.float64).tobytes()
        for a in arrays)).hexdigest()


def test_without_drift_the_data_is_what_it_always_was() -> None:
    # digest of this spec's arrays from the generator before drift existed
    assert _digest(demo_data.generate(SPEC)) == "06936ad944727db2cfecb019dbcefb30b2c38f0573feada75edc793b70274881"


def test_drifting_users_take_their_new_cluster_from_their_switch_time() -> None:
    spec = demo_data.DemoSpec(users=400, items=200, interactions=40_000, clusters=4, seed=3, drift=0.5)
    users, items, _, ts, item_cluster, drift = demo_data.generate_with_drift(spec)
    static = demo_data.generate(demo_data.DemoSpec(**{**spec.__dict__, "drift": 0.0}))
    assert 0.4 < len(drift.users) / spec.users < 0.6
    assert ((ts >= demo_data.START) & (ts < demo_data.START + demo_data.DAYS * 86_400)).all()
    switch = dict(zip(drift.users.tolist(), drift.at.tolist(), strict=True))
    to = dict(zip(drift.users.tolist(), drift.to_cluster.tolist(), strict=True))
    after = np.array([u in switch and t >= switch[u] for u, t in zip(users.tolist(), ts.tolist(), strict=True)])
    # only drifting users' post-switch rows change; most of them now sit in the new cluster
    assert np.array_equal(items[~after], static[1][~after])
    in_new = np.array([item_cluster[i] == to[u] for u, i in zip(users[after].tolist(), items[after].tolist(),
                                                               strict=True)])
    assert in_new.mean() > spec.affinity - 0.05
    assert (drift.to_cluster != drift.from_cluster).all()
    # before the switch the same users mostly sat in their first cluster
    before = np.isin(users, drift.users) & ~after
    first = dict(zip(drift.users.tolist(), drift.from_cluster.tolist(), strict=True))
    in_old = np.array([item_cluster[i] == first[u] for u, i in zip(users[before].tolist(), items[before].tolist(),
                                                                   strict=True)])
    assert in_old.mean() > spec.affinity - 0.05


def test_make_demo_data_writes_drifting_timestamped_rows(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "d.csv"
    assert cli.main(["make-demo-data", "--out", str(out), "--users", "100", "--items", "60",
                     "--interactions", "2000", "--drift", "0.5"]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "user_id,item_id,weight,timestamp" and len(lines) == 2001
    assert cli.main(["make-demo-data", "--out", str(out), "--drift", "1.5"]) != 0
