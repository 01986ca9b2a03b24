"""A user's online vector does not depend on the order their events arrived in (docs/online.md,
"The model"): two real learners, journals and tables on disk, fed the same events in opposite
orders, one event per call, write the same sums and the same vector bit for bit, equal to the
reference recalculation from the events' history. Values are chosen whose float sums differ
by order (0.1 + 0.2 + 0.7 is 1.0 one way and 0.9999999999999999 the other), so a running
float total would fail this."""

from __future__ import annotations

import pathlib
import time

import numpy as np

from reco_sidecar.artifact.loader import open_model
from reco_sidecar.online import solve
from reco_sidecar.online.events import Event
from reco_sidecar.online.history import UserHistory
from reco_sidecar.runtime import wire as m
from reco_sidecar.runtime.learner.learner import Learner
from reco_sidecar.runtime.learner.table import Slot, TableReader, table_path
from tests.support.models import online_copy

WEIGHTS = [0.1, 0.2, 0.7]


def slots(root: pathlib.Path, directory: pathlib.Path, events: list[Event], users: list[str]) -> dict[str, Slot]:
    learner = Learner(model_root=root, model="demo", directory=directory, max_users=1000, retention=1000,
                      fsync=False)
    learner.serve(1)
    try:
        for e in events:  # one call each: each event is applied on arrival
            (fed,) = learner.feed([m.Feed(1, (e,))])
            assert (fed.accepted, fed.error) == (1, "")
        reader = TableReader(table_path(directory / "tables", "demo", 1))
        try:
            found = {u: reader.lookup(u) for u in users}
        finally:
            reader.close()
    finally:
        learner.close()
    out: dict[str, Slot] = {}
    for user, slot in found.items():
        assert slot is not None, user
        out[user] = slot
    return out


def test_the_same_events_in_opposite_orders_give_the_same_vector_bit_for_bit(
        demo_root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    root = online_copy(demo_root, tmp_path / "root")
    model = open_model(root / "demo" / "1")
    items = list(model.items.ids)
    known = list(model.users.ids)[3]
    now = time.time()
    like = model.info.event_types["like"].weight
    # Three items, each liked with weights 0.1, 0.2 and 0.7 in turn, by a known user and a new one.
    events = [Event(f"{user}-{k}", user, items[(k // 3) * 11], "like", WEIGHTS[k % 3], now + k)
              for user in (known, "someone-new") for k in range(9)]
    values = [like * w for w in WEIGHTS[:3]]
    assert (values[0] + values[1]) + values[2] != (values[2] + values[1]) + values[0]  # the orders differ
    users = [known, "someone-new"]
    a = slots(root, tmp_path / "a", events, users)
    b = slots(root, tmp_path / "b", list(reversed(events)), users)
    for user in users:
        va, vb = a[user].vector, b[user].vector
        assert va is not None and vb is not None
        # the sums per item (kept least recently touched first: by row here)
        oa, ob = np.argsort(a[user].sum_rows), np.argsort(b[user].sum_rows)
        assert a[user].sum_rows[oa].tolist() == b[user].sum_rows[ob].tolist()
        assert a[user].sum_values[oa].tobytes() == b[user].sum_values[ob].tobytes(), user
        assert va.tobytes() == vb.tobytes(), user
        reference = solve.recalculate(model, UserHistory(user).add(e for e in events if e.user_id == user))
        assert reference is not None
        assert np.array_equal(reference.vector, va), user
