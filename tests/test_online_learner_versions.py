"""The learner's version steps with their real journal and tables on disk (runtime/learner/
learner.py), as process.py drives them during a reload: events accepted while a version is
solved off the loop reach it exactly once, and the journal is not compacted under the solve
(docs/online.md, "Reload"): a compaction would shift the records the solve reads by count.
The process-level test (tests/test_online_reload_solve.py) cannot reach compaction: its
retention is the default."""

from __future__ import annotations

import pathlib
import time

import numpy as np

from harness.versions import copy_version
from reco_sidecar.artifact.loader import open_model
from reco_sidecar.online.events import Event
from reco_sidecar.runtime import wire as m
from reco_sidecar.runtime.learner.learner import Learner
from reco_sidecar.runtime.learner.table import TableReader, table_path
from tests.support.models import online_copy

RETENTION = 10  # compaction once the journal holds more than 20 records


def test_events_accepted_during_a_solve_reach_the_new_version_once_and_compaction_waits(
        demo_root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    root = online_copy(demo_root, tmp_path / "root")
    model = open_model(root / "demo" / "1")
    items = list(model.items.ids)
    like = model.info.event_types["like"].weight
    learner = Learner(model_root=root, model="demo", directory=tmp_path / "online", max_users=1000,
                      retention=RETENTION, fsync=False)
    learner.serve(1)
    now = time.time()

    def feed(first: int, count: int) -> None:
        events = tuple(Event(f"e{i}", f"user-{i}", items[i % len(items)], "like", None, now)
                       for i in range(first, first + count))
        (fed,) = learner.feed([m.Feed(1, events)])
        assert (fed.accepted, fed.error) == (count, "")

    feed(0, 5)
    version = copy_version(root / "demo", 1)
    cut = learner.begin(version)
    assert cut == 5
    assert learner.begin(version) is None  # being built: not begun twice
    feed(5, 25)  # past twice the retention: a compaction would run now, but not under a solve
    assert learner.journal.records == 30
    solved = learner.solve(version, cut)
    learner.finish(version, solved)
    learner.settle(version, exclusive=True)
    assert list(learner.states) == [version]
    reader = TableReader(table_path(tmp_path / "online" / "tables", "demo", version))
    try:
        for i in range(30):  # the 5 before the cut from the journal, the 25 after it kept
            slot = reader.lookup(f"user-{i}")
            assert slot is not None, i
            assert slot.sum_rows.tolist() == [model.items.row(items[i % len(items)])], i
            assert np.allclose(slot.sum_values, [like]), (i, slot.sum_values)  # once, not twice
    finally:
        reader.close()
    feed(30, 1)  # no solve now: the journal is compacted to its newest RETENTION records
    assert learner.journal.records == RETENTION
    learner.close()
