from reco_sidecar.training.interactions import Builder


def test_sorted_by_id_moves_each_weight_with_its_ids() -> None:
    b = Builder()
    for user, item, w in [("u2", "b", 1.0), ("u1", "c", 2.0), ("u2", "a", 3.0), ("u1", "b", 4.0), ("u1", "b", 0.5)]:
        b.add(user, item, w)
    data = b.build()
    assert (data.user_ids, data.item_ids) == (["u2", "u1"], ["b", "c", "a"])
    s = data.sorted_by_id()
    assert (s.user_ids, s.item_ids) == (["u1", "u2"], ["a", "b", "c"])
    assert s.matrix.toarray().tolist() == [[0.0, 4.5, 2.0], [3.0, 1.0, 0.0]]
    assert s.matrix.has_sorted_indices


def test_builder_mixes_single_adds_and_batches_in_order_of_first_appearance() -> None:
    import numpy as np

    b = Builder()
    b.add("u1", "a", 1.0)
    b.add_arrays(("u2", "u1", "u3"), ("b", "a", "a"), np.array([2.0, 3.0, 4.0]))
    b.add("u3", "c", 5.0)
    b.add_arrays(["u4"], ["b"], np.array([6.0]))
    data = b.build()
    assert data.user_ids == ["u1", "u2", "u3", "u4"] and data.item_ids == ["a", "b", "c"]
    assert data.matrix.toarray().tolist() == [[4.0, 0, 0], [0, 2.0, 0], [4.0, 0, 5.0], [0, 6.0, 0]]


def test_an_empty_builder_refuses_to_build() -> None:
    import numpy as np
    import pytest

    from reco_sidecar.common.errors import InvalidArgument

    b = Builder()
    b.add_arrays([], [], np.zeros(0))
    with pytest.raises(InvalidArgument, match="no interactions"):
        b.build()
