"""A user's online vector is implicit's own recalculation of that user (item factors fixed) on
the matrix row the next training would see: the trained values plus the new events'."""

from __future__ import annotations

import pathlib
import random

import numpy as np
import pytest
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from reco_sidecar.artifact import loader
from reco_sidecar.artifact.writer import write_version
from reco_sidecar.engine.eventtypes import from_weights
from reco_sidecar.engine.model import Model
from reco_sidecar.engine.objective import Objective
from reco_sidecar.online.events import Event
from reco_sidecar.online.history import UserHistory
from reco_sidecar.online.solve import from_totals, recalculate
from reco_sidecar.training import pipeline
from reco_sidecar.training.interactions import Interactions

WEIGHTS = {"view": 0.1, "click": 0.3, "like": 0.7, "share": 1.0, "skip": -0.3, "hide": -1.0}
AS_OF = 1_700_000_000.0
REG, ALPHA = 0.05, 20.0
Trained = tuple[Model, AlternatingLeastSquares, sp.csr_matrix]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    rng = np.random.default_rng(3)
    users, items = 60, 40
    dense = np.where(rng.random((users, items)) < 0.15, rng.choice([0.1, 0.3, 0.7, 1.0], (users, items)), 0.0)
    dense[5, 7] = -0.3  # a trained skip outweighing the rest
    matrix = sp.csr_matrix(dense.astype(np.float32))
    with threadpool_limits(1, "blas"):
        als = AlternatingLeastSquares(factors=8, regularization=REG, alpha=ALPHA, iterations=6, random_state=1)
        als.fit(matrix, show_progress=False)
    data = Interactions([f"u{u}" for u in range(users)], [f"i{i}" for i in range(items)], matrix, AS_OF)
    content = pipeline.package(data, als.user_factors, als.item_factors, algorithm="als", training={},
                               fold_in={"regularization": REG, "alpha": ALPHA},
                               event_types=from_weights(WEIGHTS),
                               objective=Objective("implicit", alpha=ALPHA, regularization=REG), as_of=AS_OF)
    root = tmp_path_factory.mktemp("models")
    return loader.open_model(write_version(root, "m", content, ann_trees=2)), als, matrix


def ev(n: int, user: str, item: str, kind: str, *, weight: float | None = None, dt: float = 60.0) -> Event:
    return Event(f"e{n}", user, item, kind, weight, AS_OF + dt)


def implicit_row(als: AlternatingLeastSquares, row: np.ndarray) -> np.ndarray:
    """implicit's own recalculation of one user from a (1, items) row of values."""
    with threadpool_limits(1, "blas"):
        out: np.ndarray = als.recalculate_user(0, sp.csr_matrix(row.reshape(1, -1).astype(np.float32)))
    return out


def expected_row(matrix: sp.csr_matrix, user: int | None, events: list[tuple[int, float]]) -> np.ndarray:
    row = np.zeros(matrix.shape[1]) if user is None else matrix[user].toarray()[0].astype(np.float64)
    for item, value in events:
        row[item] += value
    return row


def close(ours: np.ndarray, theirs: np.ndarray) -> None:
    # implicit solves in float32, we in float64: equal to float32 precision
    np.testing.assert_allclose(ours, theirs, rtol=2e-4, atol=2e-5 * float(np.abs(theirs).max()))


def test_a_known_user_with_new_events_is_implicits_recalculation(trained: Trained) -> None:
    model, als, matrix = trained
    user = 3
    trained_item = int(matrix[user].indices[0])
    new_items = [i for i in range(40) if matrix[user, i] == 0][:2]
    events = [ev(1, "u3", f"i{trained_item}", "like"), ev(2, "u3", f"i{new_items[0]}", "share", weight=2.0),
              ev(3, "u3", f"i{new_items[1]}", "click")]
    got = recalculate(model, UserHistory("u3").add(events))
    assert got is not None and not got.new_user and got.applied == 3
    want = implicit_row(als, expected_row(matrix, user, [(trained_item, 0.7), (new_items[0], 2.0),
                                                         (new_items[1], 0.3)]))
    close(got.vector, want)
    assert got.excluded.tolist() == sorted([trained_item, *new_items])


def test_negative_events_enter_as_implicit_reads_them(trained: Trained) -> None:
    model, als, matrix = trained
    user = 5  # holds a trained net-negative pair (item 7)
    liked = int(matrix[user].indices[matrix[user].data > 0][0])
    fresh = [i for i in range(40) if matrix[user, i] == 0][:2]
    # a skip that turns a liked pair negative, a skip on a new item, a hide on another
    events = [ev(1, "u5", f"i{liked}", "skip", weight=10.0), ev(2, "u5", f"i{fresh[0]}", "skip"),
              ev(3, "u5", f"i{fresh[1]}", "hide")]
    got = recalculate(model, UserHistory("u5").add(events))
    assert got is not None
    row = expected_row(matrix, user, [(liked, -3.0), (fresh[0], -0.3), (fresh[1], -1.0)])
    assert row[liked] < 0 and row[7] < 0
    close(got.vector, implicit_row(als, row))
    # hide puts the item in the seen set, skip does not
    assert got.excluded.tolist() == [fresh[1]]


def test_a_user_unknown_at_training_gets_a_vector_from_events_alone(trained: Trained) -> None:
    model, als, matrix = trained
    events = [ev(1, "newcomer", "i2", "like"), ev(2, "newcomer", "i9", "view"), ev(3, "newcomer", "i9", "share"),
              ev(4, "newcomer", "i11", "skip")]
    got = recalculate(model, UserHistory("newcomer").add(events))
    assert got is not None and got.new_user
    close(got.vector, implicit_row(als, expected_row(matrix, None, [(2, 0.7), (9, 1.1), (11, -0.3)])))
    assert got.rows.tolist() == [2, 9, 11]


def test_events_the_version_already_learned_unknown_items_and_retired_types_take_no_part(trained: Trained) -> None:
    model, als, matrix = trained
    history = UserHistory("newcomer").add([
        ev(1, "newcomer", "i2", "like"),
        ev(2, "newcomer", "i4", "like", dt=0.0),  # at as_of: learned
        ev(3, "newcomer", "i5", "like", dt=-100.0),  # before as_of: learned
        ev(4, "newcomer", "not-in-this-version", "like"),
        ev(5, "newcomer", "i6", "bookmark"),  # a type this version does not know
    ])
    got = recalculate(model, history)
    assert got is not None and got.applied == 1 and got.rows.tolist() == [2]
    close(got.vector, implicit_row(als, expected_row(matrix, None, [(2, 0.7)])))
    # nothing usable: no vector (the caller serves the stored one, or popular items)
    assert recalculate(model, UserHistory("u1").add([ev(9, "u1", "i1", "like", dt=-1.0)])) is None
    assert recalculate(model, UserHistory("nobody").add([ev(9, "nobody", "zzz", "like")])) is None


def test_folding_is_idempotent_by_event_id_and_independent_of_arrival_order(trained: Trained) -> None:
    model, _, _ = trained
    events = [ev(n, "u8", f"i{n % 40}", kind, dt=float(n % 5))
              for n, kind in enumerate(["like", "skip", "view", "share", "click", "hide"] * 4)]
    once = recalculate(model, UserHistory("u8").add(events))
    assert once is not None
    for seed in range(5):
        shuffled = events[:]
        random.Random(seed).shuffle(shuffled)
        # in two deliveries, with retries of half the events in the second
        h = UserHistory("u8").add(shuffled[:10]).add(shuffled[5:] + shuffled[:5])
        again = recalculate(model, h)
        assert again is not None
        assert again.vector.tobytes() == once.vector.tobytes()
        assert h.event_ids == {e.event_id for e in events}
    # a retry of an id with different content changes nothing: the first arrival stands
    retried = UserHistory("u8").add(events).add([ev(0, "u8", "i30", "share")])
    assert retried.events == UserHistory("u8").add(events).events


def test_a_history_refuses_another_users_event() -> None:
    with pytest.raises(ValueError, match="another user"):
        UserHistory("a").add([Event("e", "b", "i", "like", None, 1.0)])


def test_old_recent_items_fold_in_is_the_same_solve(trained: Trained) -> None:
    model, als, _ = trained
    rows = np.array([1, 4, 9])
    close(model.fold_in(rows), implicit_row(als, expected_row(sp.csr_matrix((1, 40)), None,
                                                              [(1, 1.0), (4, 1.0), (9, 1.0)])))


def test_history_is_the_trained_row(trained: Trained, tmp_path: pathlib.Path) -> None:
    model, _, matrix = trained
    rows, values = model.history(5)
    assert rows.tolist() == matrix[5].indices.tolist()
    np.testing.assert_array_equal(values, matrix[5].data.astype(np.float64))


def test_a_value_summing_to_exactly_zero_has_confidence_zero_as_in_implicit(trained: Trained) -> None:
    model, als, _ = trained
    # share (+1) then hide (-1) on the same new item: an explicit zero in implicit's matrix
    got = recalculate(model, UserHistory("z").add([ev(1, "z", "i3", "like"), ev(2, "z", "i8", "share"),
                                                   ev(3, "z", "i8", "hide")]))
    assert got is not None and got.values.tolist() == [0.7, 0.0]
    row = sp.csr_matrix((np.array([0.7, 0.0], dtype=np.float32), np.array([3, 8]), np.array([0, 2])),
                        shape=(1, 40))
    assert row.nnz == 2  # the zero is stored, as the sum leaves it
    with threadpool_limits(1, "blas"):
        want = als.recalculate_user(0, row)
    close(got.vector, want)
    # and it is not the same as leaving the item out
    assert not np.allclose(got.vector, implicit_row(als, expected_row(sp.csr_matrix((1, 40)), None, [(3, 0.7)])),
                           rtol=1e-3)


def test_an_event_on_an_item_new_to_the_version_counts_once_a_version_knows_it(trained: Trained,
                                                                               tmp_path: pathlib.Path) -> None:
    model, _, matrix = trained
    history = UserHistory("u2").add([ev(1, "u2", "i-new", "share"), ev(2, "u2", "i1", "like")])
    first = recalculate(model, history)
    assert first is not None and first.applied == 1
    # the next version knows i-new (one more item column)
    wider = sp.hstack([matrix, sp.csr_matrix((matrix.shape[0], 1), dtype=np.float32)]).tocsr()
    rng = np.random.default_rng(0)
    data = Interactions([f"u{u}" for u in range(matrix.shape[0])], [*(f"i{i}" for i in range(40)), "i-new"],
                        wider, AS_OF)
    content = pipeline.package(data, np.asarray(model.user_factors),
                               np.vstack([model.item_factors, rng.standard_normal((1, 8)).astype(np.float32)]),
                               algorithm="als", training={}, fold_in={}, event_types=from_weights(WEIGHTS),
                               objective=Objective("implicit", alpha=ALPHA, regularization=REG), as_of=AS_OF)
    later = loader.open_model(write_version(tmp_path, "m", content, ann_trees=2))
    second = recalculate(later, history)
    assert second is not None and second.applied == 2 and 40 in second.rows.tolist()


def test_per_item_totals_solve_as_the_events_do(trained: Trained) -> None:
    model, _, _ = trained
    events = [ev(1, "u4", "i2", "like"), ev(2, "u4", "i2", "view"), ev(3, "u4", "i17", "skip"),
              ev(4, "u4", "gone", "share")]
    by_events = recalculate(model, UserHistory("u4").add(events))
    by_totals = from_totals(model, "u4", {"i2": 0.7 + 0.1, "i17": -0.3, "gone": 1.0})
    assert by_events is not None and by_totals is not None
    assert by_totals.rows.tolist() == by_events.rows.tolist()
    np.testing.assert_allclose(by_totals.vector, by_events.vector, rtol=1e-6)
    assert from_totals(model, "nobody", {"gone": 1.0}) is None


def test_a_history_is_padded_by_its_own_length_alone_and_not_by_much() -> None:
    """engine/foldin.py pads each history with zero-weight entries to a size that depends on
    its length only (what keeps a user's vector independent of its group), at most 7 entries
    up to 64 and a quarter beyond, with few distinct sizes."""
    from reco_sidecar.engine.foldin import padded_length

    lengths = np.arange(1, 5000)
    padded = padded_length(lengths)
    assert (padded >= lengths).all()
    assert (padded[lengths <= 64] - lengths[lengths <= 64] <= 7).all()
    assert (padded[lengths > 64] <= 1.25 * lengths[lengths > 64]).all()
    # alone or among others, the same size
    assert [int(padded_length(np.array([n]))[0]) for n in (1, 9, 65, 129, 4999)] == [
        int(padded[n - 1]) for n in (1, 9, 65, 129, 4999)]
    assert len(np.unique(padded_length(np.arange(5, 60)))) == 8
