from reco_sidecar.training.interactions import Builder


def test_sorted_by_id_moves_each_weight_with_its_ids():
    b = Builder()
    for user, item, w in [("u2", "b", 1.0), ("u1", "c", 2.0), ("u2", "a", 3.0), ("u1", "b", 4.0), ("u1", "b", 0.5)]:
        b.add(user, item, w)
    data = b.build()
    assert (data.user_ids, data.item_ids) == (["u2", "u1"], ["b", "c", "a"])
    s = data.sorted_by_id()
    assert (s.user_ids, s.item_ids) == (["u1", "u2"], ["a", "b", "c"])
    assert s.matrix.toarray().tolist() == [[0.0, 4.5, 2.0], [3.0, 1.0, 0.0]]
    assert s.matrix.has_sorted_indices
